//! The human-readable privacy notice, generated from the policy so the words
//! and the behaviour cannot drift apart. Markdown is the primary form; HTML is
//! the same Markdown turned into a standalone page.

use std::fmt::Write as _;

use crate::model::{
    CcpaRight, Channel, CookieCategory, GdprRight, GdprRole, LawfulBasis, LegalDisclosure, Policy, Source,
};
use crate::units::Retention;

/// Section headings of the notice, in order. Every notice has all of them.
pub const SECTIONS: &[&str] = &[
    "What we collect and how",
    "Information collected automatically",
    "Cookies and similar technologies",
    "Third-party cookies",
    "Information we receive from third parties",
    "How we use your information",
    "Marketing and unsubscribing",
    "How we share information",
    "Legal disclosures",
    "For EU/EEA users",
    "For California consumers",
    "International transfers",
    "Children's privacy",
    "Data quality",
    "Data retention",
    "Compliance monitoring",
    "Security",
    "Breach notification",
    "Reporting a security incident",
    "Changes to this policy",
    "Contact us",
];

/// Escapes text for a Markdown table cell or inline run.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            '\n' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

/// A duration from the policy in words ("48 hours"); unparsable text as written.
fn spoken(duration: &str) -> String {
    crate::units::PolicyDuration::parse(duration).map_or_else(|_| md(duration), |d| d.to_string())
}

/// A Markdown link to `url` that shows the URL itself.
fn link(url: &str) -> String {
    format!("<{url}>")
}

fn mailto(email: &str) -> String {
    format!("[{}](mailto:{email})", md(email))
}

/// Lower-cases a leading capital for use mid-sentence, leaving acronyms ("IP address") alone.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && b.is_lowercase() => {
            a.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text.to_owned(),
    }
}

/// Ends a sentence exactly once.
fn sentence(text: &str) -> String {
    format!("{}.", text.trim_end().trim_end_matches('.'))
}

fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

struct Notice<'a> {
    p: &'a Policy,
    out: String,
}

impl<'a> Notice<'a> {
    fn line(&mut self, text: &str) {
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn heading(&mut self, level: usize, text: &str) {
        let _ = write!(self.out, "\n{} {}\n\n", "#".repeat(level), md(text));
    }

    fn bullet(&mut self, text: &str) {
        let _ = writeln!(self.out, "- {text}");
    }

    fn category_words(&self, keys: &[String]) -> String {
        let words: Vec<String> = keys
            .iter()
            .map(|k| self.p.categories.get(k).map_or_else(|| md(k), |c| md(&lower_first(&c.description))))
            .collect();
        join_words(&words)
    }

    fn recipient_name(&self, key: &str) -> String {
        self.p.recipients.get(key).map_or_else(|| md(key), |r| md(&r.name))
    }

    fn render(mut self) -> String {
        let p = self.p;
        let _ = writeln!(self.out, "# Privacy Policy of {}\n", md(&p.controller.name));
        let _ = writeln!(self.out, "**Last Updated: {}** (version {})\n", p.last_updated, md(&p.version));
        let _ = writeln!(
            self.out,
            "{} respects your privacy. This notice explains what personal information we collect, why, \
             on what legal grounds, who receives it, how long we keep it, and the rights you have. \
             It is generated from the same policy file that our systems enforce.",
            md(&p.controller.name)
        );
        if !p.scope.applies_to.is_empty() {
            self.line("\nThis notice applies when you:\n");
            for s in &p.scope.applies_to {
                self.bullet(&md(s));
            }
        }
        if !p.scope.excludes.is_empty() {
            self.line("\nIt does not cover:\n");
            for s in &p.scope.excludes {
                self.bullet(&md(s));
            }
        }
        self.collected();
        self.automatic();
        self.cookies();
        self.third_party_sources();
        self.uses();
        self.marketing();
        self.sharing();
        self.legal();
        self.gdpr();
        self.ccpa();
        self.transfers();
        self.everyone();
        self.out
    }

    fn collected(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[0]);
        self.line("We collect only the fields listed for each place where you give us information; anything else is refused, not stored.\n");
        for point in p.collection_points.values() {
            let provided: Vec<String> = point
                .fields
                .values()
                .filter(|f| p.categories.get(&f.category).is_some_and(|c| c.source == Source::Provided))
                .map(|f| f.category.clone())
                .collect();
            if provided.is_empty() {
                continue;
            }
            let mut uniq = provided.clone();
            uniq.dedup();
            let optional = if point.optional { " Taking part is optional." } else { "" };
            let stored = point
                .stored_with
                .as_deref()
                .map(|r| format!(" Stored with {}", sentence(&self.recipient_name(r))))
                .unwrap_or_default();
            self.bullet(&format!("**{}**: {}.{optional}{stored}", md(&point.description), self.category_words(&uniq)));
        }
        if let Some(fl) = &p.federated_learning {
            self.heading(3, "Federated learning and your training data");
            if fl.data_stays_with_owner {
                self.line("When you use federated learning, your training data stays with you.");
            }
            let mut how = Vec::new();
            if fl.updates_encrypted {
                how.push("encrypted".to_owned());
            }
            if fl.updates_anonymised {
                how.push("anonymised".to_owned());
            }
            if !how.is_empty() {
                let _ = writeln!(self.out, "Whatever leaves your environment is {} first.", join_words(&how));
            }
            if !fl.personal_data_gathered {
                self.line("We do not gather personal information contained in your data entries, files or feedback.");
            }
            if let Some(point) = fl.raw_upload_point.as_ref().and_then(|k| p.collection_points.get(k)) {
                let with =
                    point.stored_with.as_deref().map(|r| self.recipient_name(r)).unwrap_or_else(|| "us".to_owned());
                let _ = writeln!(
                    self.out,
                    "\nIf you choose to upload raw data, which may contain personal information, it is encrypted and kept in secure object storage operated by {}",
                    sentence(&with)
                );
            }
        }
    }

    fn automatic(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[1]);
        self.line("As you use our website and services, we collect some information automatically:\n");
        let mut any_identifying = false;
        for cat in p.categories.values().filter(|c| c.source == Source::Automatic) {
            any_identifying |= cat.identifies;
            self.bullet(&md(&cat.description));
        }
        self.line("");
        if !any_identifying {
            self.line("This information does not identify you on its own, but we may link it with personal information we collect in other ways or receive from third parties.");
        } else {
            self.line("Some of this information can identify you, and we treat it as personal information.");
        }
        let auto_keys: Vec<&String> =
            p.categories.iter().filter(|(_, c)| c.source == Source::Automatic).map(|(k, _)| k).collect();
        let users: Vec<String> = p
            .purposes
            .values()
            .filter(|pu| pu.categories.iter().any(|c| auto_keys.contains(&c)))
            .map(|pu| md(&pu.description))
            .collect();
        if !users.is_empty() {
            self.line("\nWe use it for these purposes:\n");
            for u in users {
                self.bullet(&u);
            }
        }
    }

    fn cookie_table(&mut self, third_party: bool) {
        let p = self.p;
        let rows: Vec<_> = p.cookies.iter().filter(|(_, c)| (c.provider != "first_party") == third_party).collect();
        if rows.is_empty() {
            self.line("None.");
            return;
        }
        self.line("| Cookie | Set by | Category | Purpose | Lifetime |\n| --- | --- | --- | --- | --- |");
        for (name, c) in rows {
            let by =
                if c.provider == "first_party" { md(&p.controller.name) } else { self.recipient_name(&c.provider) };
            let category = match c.category {
                CookieCategory::StrictlyNecessary => "Strictly necessary",
                CookieCategory::Functional => "Functional",
                CookieCategory::Analytics => "Analytics",
                CookieCategory::Marketing => "Marketing",
            };
            let _ = writeln!(
                self.out,
                "| {} | {by} | {category} | {} | {} |",
                md(name),
                md(&c.purpose),
                spoken(&c.lifetime)
            );
        }
    }

    fn cookies(&mut self) {
        self.heading(2, SECTIONS[2]);
        self.line("We use cookies and similar technologies, stored on your device, to run the site, remember your preferences and understand how it is used:\n");
        self.cookie_table(false);
        self.heading(2, SECTIONS[3]);
        self.line("Content and applications served by others on our website, such as embedded videos, may set their own cookies and collect information about your activity, which they may link with your personal information or use for interest-based advertising. We do not control these technologies; contact the provider about them. See \"How we share information\" for who they are and how to opt out.\n");
        self.cookie_table(true);
    }

    fn third_party_sources(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[4]);
        let cats: Vec<_> = p.categories.values().filter(|c| c.source == Source::ThirdParty).collect();
        if cats.is_empty() {
            self.line("We do not receive personal information about you from third parties.");
            return;
        }
        for cat in cats {
            let from = if cat.sources.is_empty() {
                String::new()
            } else {
                format!(" (from {})", join_words(&cat.sources.iter().map(|s| md(s)).collect::<Vec<_>>()))
            };
            self.bullet(&format!("{}{from}", md(&cat.description)));
        }
        self.line("\nWe may combine it with other information we hold about you.");
    }

    fn uses(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[5]);
        self.line("We use personal information only for these purposes, or for another purpose with your consent:\n");
        for pu in p.purposes.values() {
            self.bullet(&md(&pu.description));
        }
    }

    fn marketing(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[6]);
        let marketing: Vec<_> = p.purposes.values().filter(|pu| pu.direct_marketing).collect();
        if marketing.is_empty() {
            self.line("We do not use your information for direct marketing.");
            return;
        }
        for pu in &marketing {
            self.bullet(&md(&pu.description));
        }
        self.line("\nEvery marketing email we send carries a working unsubscribe link. You may object to direct marketing at any time, free of charge.");
        let pages: Vec<String> = p
            .pages
            .values()
            .filter(|pg| !pg.withdraws.is_empty())
            .map(|pg| format!("\"{}\" ({})", md(&pg.title), md(&pg.path)))
            .collect();
        if !pages.is_empty() {
            let _ = writeln!(
                self.out,
                "You can also change your choices on these pages of our privacy center: {}.",
                join_words(&pages)
            );
        }
    }

    fn sharing(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[7]);
        self.line("We disclose personal information only to these recipients, for the purposes listed. Processors and service providers are bound by contract to use it only for the purposes we disclosed it for.\n");
        for r in p.recipients.values() {
            let _ = write!(self.out, "- **{}** ({}): {}", md(&r.name), r.role.label(), sentence(&md(&r.service)));
            if !r.categories.is_empty() {
                let _ = write!(self.out, " Receives: {}", sentence(&self.category_words(&r.categories)));
            }
            if let Some(u) = &r.privacy_policy_url {
                let _ = write!(self.out, " Privacy policy: {}.", link(u));
            }
            if let Some(u) = &r.opt_out_url {
                let _ = write!(self.out, " Opt out: {}.", link(u));
            }
            self.out.push('\n');
        }
        self.line("\nWe may also share information to fulfil the purpose for which you provided it, for any other purpose we disclosed when you provided it, and with your consent.");
        let mut disclosed: Vec<String> = p.recipients.values().flat_map(|r| r.categories.clone()).collect();
        disclosed.sort();
        disclosed.dedup();
        if !disclosed.is_empty() {
            let _ = writeln!(
                self.out,
                "\nThe categories of personal information we may disclose are: {}.",
                self.category_words(&disclosed)
            );
        }
    }

    fn legal(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[8]);
        if p.legal_disclosures.is_empty() {
            self.line("We do not disclose personal information other than as described above.");
            return;
        }
        self.line("We may also disclose personal information:\n");
        for d in &p.legal_disclosures {
            self.bullet(match d {
                LegalDisclosure::LegalProcess => "to comply with a court order, law or legal process, including requests from government or regulators;",
                LegalDisclosure::ProtectRights => "where necessary to protect the rights, property or safety of our company, our customers or others, including exchanging information for fraud protection and credit risk reduction;",
                LegalDisclosure::EnforceTerms => "to enforce our terms of use and other agreements, including for billing and collection.",
            });
        }
    }

    fn gdpr(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[9]);
        self.line("Where the GDPR applies, the following information and rights are available to you.");
        self.heading(3, "Controller and processor");
        for s in p.services.values() {
            let role = match s.role {
                GdprRole::Controller => "we are the **controller**",
                GdprRole::Processor => {
                    "we are a **processor**: we use personal information only as our customers instruct"
                }
            };
            self.bullet(&format!("{}: {role}.", md(&s.description)));
        }
        self.heading(3, "Purposes and lawful bases");
        self.line("| Purpose | Types of data | Lawful basis |\n| --- | --- | --- |");
        for pu in p.purposes.values() {
            let mut basis: Vec<String> = pu.basis.as_slice().iter().map(|b| b.label().to_owned()).collect();
            if let (true, Some(li)) = (pu.basis.contains(LawfulBasis::LegitimateInterests), &pu.legitimate_interest) {
                basis.push(format!("our legitimate interest: {}", md(li)));
            }
            let _ = writeln!(
                self.out,
                "| {} | {} | {} |",
                md(&pu.description),
                self.category_words(&pu.categories),
                basis.join("; ")
            );
        }
        let Some(g) = &p.rights.gdpr else { return };
        self.heading(3, "Your rights");
        let _ = writeln!(
            self.out,
            "To exercise a right, write to {} or use our privacy center.\n",
            mailto(&p.controller.privacy_email)
        );
        for r in &g.rights {
            self.bullet(match r {
                GdprRight::Access => "**Access**: confirm whether we process your personal information and get a copy of it.",
                GdprRight::Rectification => "**Rectification**: have inaccurate information corrected and incomplete information completed.",
                GdprRight::Erasure => "**Erasure**: have some or all of your personal information deleted.",
                GdprRight::Restriction => "**Restriction**: have your information marked as restricted, after which we process it only for the limited purposes the law allows.",
                GdprRight::Objection => "**Objection**: object, on grounds relating to your situation, to processing based on our legitimate interests.",
                GdprRight::ObjectDirectMarketing => "**Objection to direct marketing**: stop any processing for direct marketing, at any time.",
                GdprRight::ObjectAutomatedDecision => "**Automated decisions**: not be subject to a decision based solely on automated processing that significantly affects you.",
                GdprRight::Portability => "**Portability**: receive the information you gave us in a structured, commonly used, machine-readable format, and have it sent to another organisation.",
                GdprRight::WithdrawConsent => "**Withdraw consent**: withdraw consent at any time, and give it again later; withdrawal does not affect processing that took place before it.",
                GdprRight::Complaint => "**Complaint**: lodge a complaint with a supervisory authority. We encourage you to contact us first so we can address your concern.",
            });
        }
        let deadline = spoken(&g.deadline);
        let ext = spoken(&g.extension);
        let verify = if g.verification { " after verifying your identity" } else { "" };
        let _ = writeln!(self.out, "\nWe answer within {deadline}{verify}; for complex requests we may extend this by up to {ext} and will tell you why.");
        if let Some(u) = &g.supervisory_authorities_url {
            let _ = writeln!(self.out, "The list of EU/EEA data protection authorities is at {}.", link(u));
        }
    }

    fn ccpa(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[10]);
        let Some(c) = &p.rights.ccpa else {
            self.line("This policy makes no California-specific statements.");
            return;
        };
        let lookback = spoken(&c.lookback);
        let verify = if c.verification { "Once we receive and confirm your verifiable consumer request, " } else { "" };
        for r in &c.rights {
            match r {
                CcpaRight::Know => {
                    let _ = writeln!(self.out, "- **Right to know and data portability.** You may ask what we collected about you over the past {lookback}. {verify}we disclose the categories of personal information we collected, the categories of sources, our business or commercial purposes, the categories of third parties we share it with, the specific pieces of personal information (in a portable form), and, for each category of recipient, the categories of personal information it obtained.");
                }
                CcpaRight::Delete => {
                    let _ = writeln!(self.out, "- **Right to delete.** You may ask us to delete personal information we collected from you, subject to the exceptions the law allows. {verify}we delete it and direct our service providers to delete it too.");
                }
                CcpaRight::Correct => self.bullet("**Right to correct** inaccurate personal information."),
                CcpaRight::OptOutSaleSharing => {
                    let selling: Vec<String> = p.purposes.values().filter(|pu| pu.sale_or_sharing).map(|pu| md(&pu.description)).collect();
                    let how = c.opt_out_contact.as_deref().map(|v| if v.contains('@') { format!(" by writing to {}", mailto(v)) } else { format!(" at {}", link(v)) }).unwrap_or_default();
                    if selling.is_empty() {
                        let _ = writeln!(self.out, "- **Opt-out of sale or sharing.** We do not sell or share personal information.");
                    } else {
                        let _ = writeln!(self.out, "- **Opt-out of sale or sharing.** We do not knowingly sell personal information, but these uses of tracking technologies may count as \"sale\" or \"sharing\" under California law: {}. You may opt out{how}.", selling.join("; "));
                    }
                }
                CcpaRight::LimitSensitive => self.bullet("**Limit the use of sensitive personal information** to what is necessary to provide the services."),
                CcpaRight::NonDiscrimination => self.bullet("**Non-discrimination.** We will not deny you goods or services, charge different prices or rates, provide a different level or quality of service, or suggest that you will receive any of these, because you exercised a right."),
                CcpaRight::ShineTheLight => {
                    let any = p.recipients.values().any(|r| r.own_direct_marketing);
                    let state = if any { "Some recipients use personal information for their own direct marketing; you may ask us which." } else { "We do not disclose personal information to third parties for their own direct marketing purposes; you may ask us to confirm this." };
                    let _ = writeln!(self.out, "- **\"Shine the Light\" (Cal. Civ. Code §1798.83).** California residents may request information about our disclosures of personal information to third parties for their direct marketing purposes. {state}");
                }
            }
        }
        let deadline = spoken(&c.deadline);
        let ext = spoken(&c.extension);
        let _ = writeln!(
            self.out,
            "\nWe respond within {deadline}, extendable once by {ext} when necessary. Write to {}.",
            mailto(&p.controller.privacy_email)
        );
    }

    fn transfers(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[11]);
        self.line("Where required, we transfer personal information outside the EEA, Switzerland and the UK only with appropriate safeguards under Article 46 of the GDPR. Each transfer is recorded.\n");
        let rows: Vec<_> = p.recipients.values().filter(|r| r.country.is_some()).collect();
        if !rows.is_empty() {
            self.line("| Recipient | Country | Safeguard |\n| --- | --- | --- |");
            for r in rows {
                let _ = writeln!(
                    self.out,
                    "| {} | {} | {} |",
                    md(&r.name),
                    r.country.as_deref().unwrap_or(""),
                    r.safeguard.label()
                );
            }
        }
    }

    /// The sections that concern everyone: children, data quality, retention, compliance,
    /// security, breaches, incidents, changes and contact.
    fn everyone(&mut self) {
        self.children_and_quality();
        self.retention();
        self.compliance_and_security();
        self.breaches_and_incidents();
        self.changes_and_contact();
    }

    fn children_and_quality(&mut self) {
        let p = self.p;
        let age = p.controller.minimum_age;
        self.heading(2, SECTIONS[12]);
        let _ = writeln!(self.out, "Our services are not intended for anyone under {age}, and we do not knowingly collect personal information from them. If we learn that we collected information from a child under {age} without verified parental consent, we delete it. If you believe we hold such information, write to {}.", mailto(&p.controller.privacy_email));

        self.heading(2, SECTIONS[13]);
        self.line("We take reasonable steps to keep personal information accurate, complete and current. You can review the information you gave us and correct it at any time; please tell us promptly of any change.");
    }

    fn retention(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[14]);
        self.line("We keep personal information only as long as we need it for the purposes above, including legal obligations, dispute resolution, security and enforcing our rights. When it is no longer needed, we delete or anonymise it:\n");
        self.line("| Information | Kept | Then |\n| --- | --- | --- |");
        for c in p.categories.values() {
            let kept = c
                .retention
                .as_deref()
                .map(|r| Retention::parse(r).map(|r| r.to_string()).unwrap_or_else(|_| r.to_owned()))
                .unwrap_or_default();
            let then = match c.on_expiry {
                Some(crate::model::ExpiryAction::Delete) => "deleted",
                Some(crate::model::ExpiryAction::Anonymise) => "anonymised",
                None => "",
            };
            let _ = writeln!(self.out, "| {} | {} | {then} |", md(&c.description), md(&kept));
        }
        if p.retention.isolate_backups {
            self.line("\nWhere deletion or anonymisation is not yet possible, such as in backup archives, we keep the information secure and isolated from any further processing until it can be deleted.");
        }
    }

    fn compliance_and_security(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[15]);
        let every = p
            .compliance
            .review_every
            .as_deref()
            .and_then(|d| crate::units::PolicyDuration::parse(d).ok())
            .map(|d| format!(" at least every {d}"))
            .unwrap_or_default();
        let external = if p.compliance.external_audits { ", with external experts when necessary" } else { "" };
        let _ = writeln!(self.out, "We monitor our systems and processes for compliance with privacy law and this policy, with audits and reviews{every}{external}. Every decision our systems take about your personal information is recorded in a tamper-evident log. If something goes wrong we act at once to correct it and prevent it from happening again.");

        self.heading(2, SECTIONS[16]);
        self.line("We protect personal information against accidental loss and unauthorised access, use, alteration and disclosure:\n");
        for m in &p.security.measures {
            self.bullet(&md(m));
        }
        self.line("\nWhere you have a password for our services, keep it confidential and do not share it. No transmission over the internet is completely secure.");
    }

    fn breaches_and_incidents(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[17]);
        let within = spoken(&p.breach.notify_subjects_within);
        let channels: Vec<String> = p.breach.channels.iter().map(|c| c.label().to_owned()).collect();
        let guidance = if p.breach.include_guidance {
            ", with guidance on steps you can take to protect yourself and contact details for further questions"
        } else {
            ""
        };
        let authority = spoken(&p.breach.notify_authority_within);
        let _ = writeln!(self.out, "If information we control is compromised, we investigate promptly and notify affected people no later than {within} after discovering the breach, by {}{guidance}. Where the law requires, we notify the supervisory authority within {authority}. We keep evidence that every notification was made, and of the reason for any delay.", join_words(&channels));

        self.heading(2, SECTIONS[18]);
        let chat =
            if p.security.incident_chat { ", or talk to a representative through the chat on our website" } else { "" };
        let _ = writeln!(
            self.out,
            "To report a security incident, write to {}{chat}. Privacy concerns can be sent to {}.",
            mailto(&p.controller.security_email),
            mailto(&p.controller.privacy_email)
        );
    }

    fn changes_and_contact(&mut self) {
        let p = self.p;
        self.heading(2, SECTIONS[19]);
        let notify: Vec<String> = p
            .changes
            .notify
            .iter()
            .map(|c| match c {
                Channel::Email => "by email to the address in your account".to_owned(),
                other => format!("through {}", other.label()),
            })
            .collect();
        let how = if notify.is_empty() {
            String::new()
        } else {
            format!(" We announce material changes {}.", join_words(&notify))
        };
        let _ = writeln!(self.out, "We may update this policy to reflect changes in our business and practices.{how} The date of the last revision is shown at the top: **{}**.", p.last_updated);

        self.heading(2, SECTIONS[20]);
        let _ = writeln!(
            self.out,
            "{}  \n{}  \n{}  \n{}",
            md(&p.controller.name),
            md(&p.controller.address),
            mailto(&p.controller.privacy_email),
            link(&p.controller.website)
        );
        for (title, c) in
            [("Data protection officer", &p.controller.dpo), ("EU representative", &p.controller.eu_representative)]
        {
            if let Some(c) = c {
                let _ = writeln!(self.out, "\n{title}: {}, {}", md(&c.name), mailto(&c.email));
            }
        }
    }
}

/// The notice as Markdown.
pub fn markdown(policy: &Policy) -> String {
    Notice { p: policy, out: String::new() }.render()
}

/// The notice as a standalone HTML page.
pub fn html(policy: &Policy) -> String {
    let body = markdown_to_html(&markdown(policy));
    let title = escape_html(&format!("Privacy Policy of {}", policy.controller.name));
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"policy-version\" content=\"{}\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape_html(&policy.version)
    )
}

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn markdown_to_html(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES);
    // Raw HTML in the source is shown as text: the policy is data, not markup.
    let parser = parser.map(|ev| match ev {
        pulldown_cmark::Event::Html(t) | pulldown_cmark::Event::InlineHtml(t) => pulldown_cmark::Event::Text(t),
        other => other,
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, parser);
    out
}

/// The notice's stylesheet, inlined in its `<style>`; a page's Content-Security-Policy allows exactly it, by hash.
pub const CSS: &str = "body{font:16px/1.6 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;background:#fafbfc;margin:0}\
main{max-width:46rem;margin:0 auto;padding:2rem 1.25rem 4rem;background:#fff}\
h1{font-size:1.9rem;line-height:1.2}h2{margin-top:2.2rem;border-bottom:1px solid #e3e6ea;padding-bottom:.3rem}\
table{border-collapse:collapse;width:100%;margin:1rem 0;font-size:.92rem}th,td{border:1px solid #d8dde3;padding:.4rem .55rem;text-align:left;vertical-align:top}\
th{background:#f1f3f6}a{color:#0b57d0}";

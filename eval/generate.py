"""Writes a seeded, labelled corpus for comparing PII detectors.

Each line of corpus.txt is one document; labels.jsonl holds, per line of
corpus.txt, the labelled spans as byte offsets into corpus.txt. Hard negatives
(order numbers, versions, timestamps, UUIDs, hashes, numbers failing their
checksum) are mixed in unlabelled.
"""

import hashlib
import json
import random
import sys
import uuid

from faker import Faker

SEED = 20261129


# Sentences used only by the held-out corpus (`generate.py N DIR held-out`): charter's
# name and place rules were written against the development templates, never these.
HELD_OUT = {
    "PERSON": [
        "Our reviewer {} flagged it.", "{} wrote back on Tuesday.", "Please forward this to {} today.",
        "Notes from {}: all good.", "The ticket was assigned to {} last night.",
    ],
    "LOCATION": [
        "Our warehouse at {} reopened.", "Flights to {} were delayed.", "{} is where she grew up.",
        "The conference takes place in {} this year.", "Their new branch near {} opens soon.",
    ],
}


def main(n_docs: int, out_dir: str, held_out: bool = False) -> None:
    fake = Faker("en_US")
    seed = SEED + 1 if held_out else SEED
    Faker.seed(seed)
    rnd = random.Random(seed)
    corpus = open(f"{out_dir}/corpus.txt", "wb")
    labels = open(f"{out_dir}/labels.jsonl", "w")
    offset = 0

    def phone() -> str:
        return rnd.choice([
            lambda: f"+1 {rnd.randint(201, 989)} {rnd.randint(200, 999)} {rnd.randint(1000, 9999)}",
            lambda: f"({rnd.randint(201, 989)}) {rnd.randint(200, 999)}-{rnd.randint(1000, 9999)}",
            lambda: f"{rnd.randint(201, 989)}-{rnd.randint(200, 999)}-{rnd.randint(1000, 9999)}",
            lambda: f"+44 20 {rnd.randint(7000, 7999)} {rnd.randint(1000, 9999)}",
        ])()

    def bad_card() -> str:
        digits = fake.credit_card_number(card_type="visa16")
        last = (int(digits[-1]) + 1) % 10
        return digits[:-1] + str(last)

    def person() -> str:
        return rnd.choice([
            fake.name,
            lambda: f"{fake.first_name()} {fake.last_name()}",
            lambda: f"{rnd.choice(['Mr.', 'Ms.', 'Dr.', 'Mrs.'])} {fake.last_name()}",
            lambda: f"{fake.first_name()} {rnd.choice('ABCDEFGHJKLMNPRSTW')}. {fake.last_name()}",
        ])()

    def location() -> str:
        return rnd.choice([
            fake.city,
            fake.city,
            fake.state,
            fake.country,
            fake.street_address,
            lambda: fake.address().replace("\n", ", "),
        ])()

    entities = [
        ("EMAIL_ADDRESS", lambda: fake.email(), ["Write to {} for details.", "Contact: {}", "reply-to {} please"]),
        ("PHONE_NUMBER", phone, ["Call me on {} tomorrow.", "phone: {}", "Our hotline {} is open."]),
        ("CREDIT_CARD", lambda: fake.credit_card_number(card_type=rnd.choice(["visa16", "mastercard", "amex"])), ["Card {} was charged.", "paid with {} yesterday"]),
        ("IBAN_CODE", lambda: fake.iban(), ["Refund to {} please.", "IBAN {}"]),
        ("IP_ADDRESS", lambda: rnd.choice([fake.ipv4_public, fake.ipv6])(), ["Login from {} failed.", "client ip {}"]),
        ("US_SSN", lambda: fake.ssn(), ["SSN {} on file.", "social security number {}"]),
        ("URL", lambda: fake.url(), ["See {} for the docs.", "Visit {} now"]),
        ("DATE_OF_BIRTH", lambda: fake.date_of_birth(minimum_age=18, maximum_age=90).isoformat(), ["She was born on {} in the city.", "DOB: {}"]),
        ("PERSON", person, [
            "{} signed the form.", "Ask {} about it.", "Dear {}, thank you for your order.",
            "Meeting with {} moved to Friday.", "Patient: {}", "cc {} on the reply", "Approved by {} yesterday.",
        ]),
        ("LOCATION", location, [
            "The office in {} is closed.", "shipped to {}", "She moved from {} last year.",
            "Address: {}", "We met near {} in the spring.", "Deliver to {} before noon.",
        ]),
    ]
    if held_out:
        entities = [(k, f, HELD_OUT.get(k, t)) for k, f, t in entities]
    negatives = [
        lambda: f"Order {rnd.randint(10**15, 10**16 - 1)} shipped.",
        lambda: f"Upgraded to version {rnd.randint(1, 9)}.{rnd.randint(0, 20)}.{rnd.randint(0, 99)}.{rnd.randint(0, 9)} today.",
        lambda: f"Logged at {fake.date_time().isoformat(sep=' ')} UTC.",
        lambda: f"Request id {uuid.UUID(int=rnd.getrandbits(128))} done.",
        lambda: f"sha256 {hashlib.sha256(str(rnd.random()).encode()).hexdigest()}",
        lambda: f"Reference {bad_card()} is not a card.",
        lambda: fake.sentence(nb_words=12),
        lambda: fake.sentence(nb_words=12),
        # Capitalised words that are not personal data.
        lambda: rnd.choice([
            "The Python SDK ships on Monday.", "See the March release notes.", "Thank you, Support Team.",
            "Training runs on NVIDIA GPUs in the cloud.", "Open the Settings page and choose Export.",
            "Version Two of the API is live.", "Federated Learning works across many devices.",
            "Happy New Year from everyone here.", "The Terms of Service changed in April.",
        ]),
    ]
    for _ in range(n_docs):
        parts, spans = [], []
        pos = 0
        for _ in range(rnd.randint(3, 7)):
            if rnd.random() < 0.55:
                kind, value_fn, templates = rnd.choice(entities)
                value = value_fn()
                template = rnd.choice(templates)
                before, after = template.split("{}")
                text = before + value + after
                start = offset + pos + len(before.encode())
                spans.append({"type": kind, "start": start, "end": start + len(value.encode())})
            else:
                text = rnd.choice(negatives)()
            parts.append(text)
            pos += len(text.encode()) + 1
        doc = " ".join(parts)
        raw = doc.encode() + b"\n"
        corpus.write(raw)
        labels.write(json.dumps({"start": offset, "end": offset + len(raw) - 1, "spans": spans}) + "\n")
        offset += len(raw)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "held-out")

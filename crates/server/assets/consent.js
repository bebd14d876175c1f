/* charter's cookie banner. Sets no cookie but the strictly necessary `consent` one and
   runs no tag until the visitor chooses; records each choice with charter. */
(function () {
  "use strict";
  var C = __CHARTER_CONFIG__;
  var me = document.currentScript;
  var base = me && me.src ? new URL(me.src).origin : "";
  var gpc = navigator.globalPrivacyControl === true;
  var state = read();

  function read() {
    var m = document.cookie.match(/(?:^|;\s*)consent=([^;]*)/);
    if (!m) return null;
    try {
      var v = JSON.parse(decodeURIComponent(m[1]));
      return v && /^[0-9a-f]{32}$/.test(v.v) && typeof v.c === "object" ? v : null;
    } catch (e) {
      return null;
    }
  }

  function write(s) {
    var secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = "consent=" + encodeURIComponent(JSON.stringify(s)) + "; path=/; max-age=" + C.keep + "; SameSite=Lax" + secure;
  }

  function visitor() {
    if (state) return state.v;
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  function allowed(cat) {
    return !!(state && state.c[cat] === true);
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  function label(cat) {
    for (var i = 0; i < C.categories.length; i++) if (C.categories[i].id === cat) return C.categories[i].label;
    return cat;
  }

  /* Tags written as <script type="text/plain" data-category="..."> run once allowed;
     iframes written with data-src stay behind a placeholder until then. */
  function activate() {
    var tags = document.querySelectorAll('script[type="text/plain"][data-category]');
    Array.prototype.forEach.call(tags, function (s) {
      if (!allowed(s.getAttribute("data-category"))) return;
      var n = document.createElement("script");
      Array.prototype.forEach.call(s.attributes, function (a) {
        if (a.name !== "type" && a.name !== "data-category") n.setAttribute(a.name, a.value);
      });
      n.text = s.text;
      s.parentNode.replaceChild(n, s);
    });
    var frames = document.querySelectorAll("iframe[data-src][data-category]");
    Array.prototype.forEach.call(frames, function (f) {
      var cat = f.getAttribute("data-category");
      var ph = f.previousElementSibling;
      if (!(ph && ph.className === "charter-placeholder")) ph = null;
      if (allowed(cat)) {
        if (!f.getAttribute("src")) f.setAttribute("src", f.getAttribute("data-src"));
        f.hidden = false;
        if (ph) ph.parentNode.removeChild(ph);
        return;
      }
      f.hidden = true;
      if (ph) return;
      ph = el("div", { "class": "charter-placeholder", role: "region", "aria-label": "Blocked content" });
      ph.appendChild(el("p", {}, "This content comes from a third party that sets " + label(cat).toLowerCase() + " cookies. It is shown only if you allow them."));
      var b = el("button", { type: "button" }, "Allow " + label(cat).toLowerCase() + " cookies");
      b.addEventListener("click", function () {
        var c = {};
        c[cat] = true;
        choose(c, false);
      });
      ph.appendChild(b);
      f.parentNode.insertBefore(ph, f);
    });
  }

  /* Records `choices` ({category: bool}) with charter and applies them at once. */
  function choose(choices, overGpc) {
    var c = state ? JSON.parse(JSON.stringify(state.c)) : {};
    for (var k in choices) c[k] = choices[k];
    state = { v: visitor(), c: c, h: C.notice, g: gpc || (state && state.g) || false };
    write(state);
    send({ visitor: state.v, choices: choices, notice: C.notice, gpc: gpc, confirm_over_gpc: !!overGpc });
    close();
    activate();
  }

  function send(body) {
    if (!window.fetch) return;
    fetch(base + "/v1/consent", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      keepalive: true
    }).catch(function () {});
  }

  function all(value) {
    var out = {};
    C.categories.forEach(function (c) { out[c.id] = value; });
    return out;
  }

  /* "Accept all" with GPC on: selling or sharing categories need the visitor's word. */
  function acceptAll() {
    var choices = all(true);
    var selling = C.categories.filter(function (c) { return c.sells; });
    if (gpc && selling.length) {
      var names = selling.map(function (c) { return c.label.toLowerCase(); }).join(", ");
      var ok = window.confirm("Your browser asks that your data not be sold or shared (Global Privacy Control). Accepting all would allow " + names + " cookies, which share data with third parties. Accept them anyway?");
      if (!ok) {
        selling.forEach(function (c) { choices[c.id] = false; });
        return choose(choices, false);
      }
      return choose(choices, true);
    }
    choose(choices, false);
  }

  var dialog = null;

  function close() {
    if (dialog && dialog.parentNode) dialog.parentNode.removeChild(dialog);
    dialog = null;
  }

  function open() {
    close();
    dialog = el("div", { id: "charter-banner", role: "dialog", "aria-labelledby": "charter-title", "aria-describedby": "charter-text" });
    dialog.appendChild(el("style", {}, C.css));
    dialog.appendChild(el("h2", { id: "charter-title" }, C.title));
    var text = el("p", { id: "charter-text" }, C.text + " ");
    text.appendChild(el("a", { href: base + C.cookies }, "Our cookie policy"));
    dialog.appendChild(text);
    if (gpc) dialog.appendChild(el("p", { role: "status", "class": "charter-gpc" }, "Opt-out request honored"));
    var choices = el("fieldset", { hidden: "" });
    choices.appendChild(el("legend", {}, "Choose which cookies we may use"));
    var boxes = {};
    C.categories.forEach(function (c) {
      var row = el("div", { "class": "charter-row" });
      var id = "charter-" + c.id;
      var box = el("input", { type: "checkbox", id: id, name: c.id });
      box.checked = allowed(c.id);
      boxes[c.id] = box;
      row.appendChild(box);
      row.appendChild(el("label", { "for": id }, c.label + ": " + c.description));
      var details = el("details", {});
      details.appendChild(el("summary", {}, c.cookies.length + " cookies"));
      var list = el("ul", {});
      c.cookies.forEach(function (k) {
        list.appendChild(el("li", {}, k.name + " (" + k.provider + "): " + k.purpose + "; kept " + k.lifetime));
      });
      details.appendChild(list);
      row.appendChild(details);
      choices.appendChild(row);
    });
    dialog.appendChild(choices);
    var buttons = el("div", { "class": "charter-buttons" });
    var accept = el("button", { type: "button", id: "charter-accept" }, "Accept all");
    var reject = el("button", { type: "button", id: "charter-reject" }, "Reject all");
    var pick = el("button", { type: "button", id: "charter-choose", "aria-expanded": "false" }, "Choose");
    var save = el("button", { type: "button", id: "charter-save", hidden: "" }, "Save choices");
    accept.addEventListener("click", acceptAll);
    reject.addEventListener("click", function () { choose(all(false), false); });
    pick.addEventListener("click", function () {
      choices.hidden = false;
      save.hidden = false;
      pick.setAttribute("aria-expanded", "true");
      var first = choices.querySelector("input");
      if (first) first.focus();
    });
    save.addEventListener("click", function () {
      var out = {};
      var over = false;
      C.categories.forEach(function (c) {
        out[c.id] = boxes[c.id].checked;
        if (gpc && c.sells && out[c.id]) over = true;
      });
      if (over && !window.confirm("Your browser asks that your data not be sold or shared (Global Privacy Control). Allow the cookies you chose that share data with third parties anyway?")) {
        C.categories.forEach(function (c) { if (c.sells) out[c.id] = false; });
        over = false;
      }
      choose(out, over);
    });
    [accept, reject, pick, save].forEach(function (b) { buttons.appendChild(b); });
    dialog.appendChild(buttons);
    document.body.appendChild(dialog);
    accept.focus();
  }

  function start() {
    document.addEventListener("click", function (e) {
      var t = e.target.closest ? e.target.closest('[data-charter-settings], a[href="#cookie-settings"]') : null;
      if (!t) return;
      e.preventDefault();
      open();
    });
    if (gpc && !(state && state.g)) {
      /* The signal is an opt-out of sale and sharing: recorded once, at once. */
      var selling = {};
      C.categories.forEach(function (c) { if (c.sells) selling[c.id] = false; });
      state = { v: visitor(), c: state ? state.c : {}, h: state ? state.h : "", g: true };
      for (var k in selling) state.c[k] = false;
      write(state);
      send({ visitor: state.v, choices: selling, notice: C.notice, gpc: true, confirm_over_gpc: false });
    }
    activate();
    if (!state || state.h !== C.notice) open();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// Progressive enhancement of the reset page: show/hide the passwords and a strength hint.
// Nothing depends on it: without JavaScript the form works the same. No inline script (CSP).
(function () {
  "use strict";
  var form = document.querySelector("form.new-password");
  if (!form) { return; }
  var d = form.dataset;
  var inputs = form.querySelectorAll('input[type="password"]');
  var first = document.getElementById("newPassword");
  var meter = document.getElementById("password-strength");

  // One toggle for both fields, after the first; aria-pressed tells its state.
  var toggle = document.createElement("button");
  toggle.type = "button";
  toggle.className = "toggle";
  toggle.textContent = d.show;
  toggle.setAttribute("aria-pressed", "false");
  toggle.setAttribute("aria-label", d.showLabel);
  toggle.addEventListener("click", function () {
    var showing = toggle.getAttribute("aria-pressed") === "true";
    inputs.forEach(function (el) { el.type = showing ? "password" : "text"; });
    toggle.setAttribute("aria-pressed", showing ? "false" : "true");
    toggle.textContent = showing ? d.show : d.hide;
  });
  if (first) { first.insertAdjacentElement("afterend", toggle); }

  // A rough hint only (length and variety); the server's rules decide.
  function score(pw) {
    var min = parseInt(d.minLength, 10) || 8;
    if (pw.length < min) { return "short"; }
    var kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter(function (re) { return re.test(pw); }).length;
    var words = pw.trim().split(/\s+/).length;
    var points = pw.length + kinds * 2 + (words > 2 ? 6 : 0);
    if (points >= 24) { return "good"; }
    if (points >= 16) { return "fair"; }
    return "weak";
  }
  var labels = { short: d.strengthShort, weak: d.strengthWeak, fair: d.strengthFair, good: d.strengthGood };
  var last = "";
  if (first && meter) {
    first.addEventListener("input", function () {
      if (!first.value) { meter.hidden = true; last = ""; return; }
      var s = score(first.value);
      meter.hidden = false;
      if (s !== last) { meter.textContent = labels[s]; last = s; }  // announce changes only
    });
  }
})();

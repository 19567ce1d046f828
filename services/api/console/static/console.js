// Reloads the console page every data-refresh seconds while it is open, unless someone is
// typing in a field or the tab is hidden (then it reloads once they come back).
(function () {
  "use strict";
  var me = document.currentScript;
  var seconds = Number(me && me.getAttribute("data-refresh")) || 30;
  function busy() {
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA") && el.value !== "";
  }
  setInterval(function () {
    if (document.visibilityState === "visible" && !busy()) {
      window.location.reload();
    }
  }, seconds * 1000);
})();

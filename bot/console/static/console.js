// Progressive enhancement only: "copy link" buttons copy their data-copy text. Without
// JavaScript the link is still shown in a read-only field that can be selected by hand.
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button[data-copy]");
  if (!b || !navigator.clipboard) return;
  ev.preventDefault();
  navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
    b.textContent = b.getAttribute("data-done") || "✓";
  });
});

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
// A select marked data-reload reloads the page with its value in the query (?kind=wecom), so
// the labels and hints that depend on it follow; without JavaScript, the table below the form
// lists them for every choice.
document.addEventListener("change", function (ev) {
  var s = ev.target.closest("select[data-reload]");
  if (!s) return;
  var url = new URL(window.location.href);
  url.searchParams.set(s.name, s.value);
  url.searchParams.delete("added");
  window.location.assign(url.toString());
});

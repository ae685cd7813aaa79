// featurebank catalog: client-side search over features, and lineage highlighting. No network.
(function () {
  "use strict";
  var input = document.getElementById("search");
  if (input) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("[data-search]"));
    var count = document.getElementById("search-count");
    var empty = document.getElementById("search-empty");
    var apply = function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (row) {
        var text = row.getAttribute("data-search");
        var ok = words.every(function (w) { return text.indexOf(w) !== -1; });
        row.style.display = ok ? "" : "none";
        if (ok) { shown += 1; }
      });
      if (count) { count.textContent = words.length ? shown + " of " + rows.length + " features match" : rows.length + " features"; }
      if (empty) { empty.style.display = shown ? "none" : "block"; }
    };
    input.addEventListener("input", apply);
    var query = new URLSearchParams(window.location.search).get("q");
    if (query) { input.value = query; }
    apply();
  }
  Array.prototype.forEach.call(document.querySelectorAll("svg.lineage"), function (svg) {
    var edges = Array.prototype.slice.call(svg.querySelectorAll(".edge"));
    Array.prototype.forEach.call(svg.querySelectorAll(".node"), function (node) {
      var id = node.getAttribute("data-id");
      node.addEventListener("mouseenter", function () {
        svg.classList.add("focus");
        node.classList.add("on");
        edges.forEach(function (edge) {
          if (edge.getAttribute("data-from") === id || edge.getAttribute("data-to") === id) {
            edge.classList.add("on");
            var other = edge.getAttribute("data-from") === id ? edge.getAttribute("data-to") : edge.getAttribute("data-from");
            var peer = svg.querySelector('.node[data-id="' + other + '"]');
            if (peer) { peer.classList.add("on"); }
          }
        });
      });
      node.addEventListener("mouseleave", function () {
        svg.classList.remove("focus");
        Array.prototype.forEach.call(svg.querySelectorAll(".on"), function (el) { el.classList.remove("on"); });
      });
    });
  });
})();

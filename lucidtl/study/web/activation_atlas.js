// The study's activation atlas pages (a layer's activation space, laid out once, at every checkpoint).
// Route (location.hash, a history entry per move): #/<run>/<layer>/<checkpoint index>[/<x>,<y>]
(function () {
  "use strict";
  var A = window.ACTIVATION_ATLAS;
  var view = document.getElementById("view");
  var statusLine = document.getElementById("status");

  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function hash(run, layer, k, cell) {
    return "#/" + [run, layer, String(k)].map(encodeURIComponent).join("/") + (cell ? "/" + cell : "");
  }
  function go(h) { if (location.hash === h) show(); else location.hash = h; }
  function parse() {
    var p = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    var runs = Object.keys(A.runs).filter(function (r) { return Object.keys(A.runs[r].layers).length; });
    var run = A.runs[p[0]] ? p[0] : runs[0];
    var layers = Object.keys(A.runs[run].layers);
    var layer = A.runs[run].layers[p[1]] ? p[1] : layers[0];
    var n = A.runs[run].layers[layer].checkpoints.length;
    var k = /^\d+$/.test(p[2] || "") ? Math.min(parseInt(p[2], 10), n - 1) : 0;
    var cell = /^\d+,\d+$/.test(p[3] || "") ? p[3] : null;
    return { run: run, layer: layer, k: k, cell: cell, runs: runs };
  }
  function cellAt(ck, xy) {
    return ck.cells.filter(function (c) { return c.x + "," + c.y === xy; })[0] || null;
  }
  function className(run, c) {
    var names = A.runs[run].class_names;
    return c === undefined ? "–" : (names && names[c] !== undefined ? names[c] + " (" + c + ")" : String(c));
  }

  function show() {
    var r = parse(), S = A.runs[r.run].layers[r.layer], ck = S.checkpoints[r.k], G = S.grid_size;
    view.innerHTML = "";
    document.title = "activation atlas: " + r.run + " / " + r.layer + " at iteration " + ck.iteration;
    view.appendChild(el("h2", { id: "atlas-title", text: r.run + " / " + r.layer + " — iteration " + ck.iteration }));
    var nav = el("p", { class: "tabs" });
    r.runs.forEach(function (run) {
      Object.keys(A.runs[run].layers).forEach(function (layer) {
        var a = el("a", { href: hash(run, layer, 0), text: run + " / " + layer });
        if (run === r.run && layer === r.layer) a.setAttribute("class", "current");
        nav.appendChild(a);
      });
    });
    view.appendChild(nav);
    var slider = el("input", { id: "checkpoint", type: "range", min: "0", max: String(S.checkpoints.length - 1),
                               value: String(r.k), step: "1", "aria-label": "checkpoint" });
    slider.addEventListener("input", function () { go(hash(r.run, r.layer, slider.value, r.cell)); });
    view.appendChild(el("p", {}, [el("label", { text: "checkpoint " }), slider,
      el("span", { id: "iteration", text: " iteration " + ck.iteration + " (" + (r.k + 1) + " of " +
        S.checkpoints.length + "), " + ck.cells.length + " cells drawn, " + S.points + " points, layout fitted " +
        (S.fit === "first" ? "on the first checkpoint" : "on all checkpoints") })]));
    var side = 480, cellPx = side / G;
    var box = el("div", { id: "atlas", style: "position:relative;width:" + side + "px;height:" + side + "px" });
    box.appendChild(el("img", { id: "atlas-image", src: ck.atlas, alt: "activation atlas", width: String(side),
                                height: String(side) }));
    ck.cells.forEach(function (c) {  // cell (x, y) sits at block row x, column y (Lucid's canvas)
      var key = c.x + "," + c.y;
      var a = el("a", { class: "cell" + (key === r.cell ? " current" : ""), href: hash(r.run, r.layer, r.k, key),
                        "data-cell": key, title: "count " + c.count + ", class " + className(r.run, c.dominant_class),
                        style: "position:absolute;left:" + c.y * cellPx + "px;top:" + c.x * cellPx + "px;width:" +
                          cellPx + "px;height:" + cellPx + "px" });
      box.appendChild(a);
    });
    view.appendChild(box);
    var panel = el("div", { id: "cell" });
    var c = r.cell && cellAt(ck, r.cell);
    if (r.cell && !c) panel.appendChild(el("p", { text: "cell " + r.cell + " is not drawn at this checkpoint " +
      "(too few points here)" }));
    if (c) {
      panel.appendChild(el("h3", { text: "cell " + r.cell }));
      panel.appendChild(el("p", { id: "cell-facts", text: "count " + c.count + " (" + (c.change >= 0 ? "+" : "") +
        c.change + " since the first checkpoint), dominant class " + className(r.run, c.dominant_class) +
        (c.dominant_share !== undefined ? " (" + Math.round(100 * c.dominant_share) + "%)" : "") }));
      panel.appendChild(el("p", { text: "nearest dataset patches" }));
      panel.appendChild(el("img", { class: "patches", src: c.patches, alt: "nearest patches" }));
    }
    if (r.cell) {
      panel.appendChild(el("p", { text: "this cell at every checkpoint" }));
      var strip = el("div", { class: "strip", id: "cell-strip" });
      S.checkpoints.forEach(function (other, j) {
        var oc = cellAt(other, r.cell);
        var fig = el("figure", {}, [oc ? el("img", { class: "render", src: oc.icon, alt: "icon" }) :
          el("div", { class: "missing", text: "not drawn" }),
          el("figcaption", { text: "iter " + other.iteration + (oc ? ", " + oc.count : "") })]);
        fig.addEventListener("click", function () { go(hash(r.run, r.layer, j, r.cell)); });
        strip.appendChild(fig);
      });
      panel.appendChild(strip);
    }
    view.appendChild(panel);
    document.body.setAttribute("data-drawn", location.hash);
  }

  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT") return;  // the slider moves itself
    var r = parse(), n = A.runs[r.run].layers[r.layer].checkpoints.length;
    var d = { ArrowLeft: -1, ArrowRight: 1 }[e.key];
    if (d && r.k + d >= 0 && r.k + d < n) { e.preventDefault(); go(hash(r.run, r.layer, r.k + d, r.cell)); }
  });
  window.addEventListener("hashchange", show);
  if (!Object.keys(A.runs).some(function (r) { return Object.keys(A.runs[r].layers).length; })) {
    statusLine.textContent = "no activation atlas in this study yet";
  } else {
    show();
  }
})();

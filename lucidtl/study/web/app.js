// The study browser. Routes (location.hash; every move is a history entry, so Back/Forward walk units):
//   #/                             layers overview
//   #/layer/<layer>[/<run>]        a layer: similarity curves per run, channels ranked by change in <run>
//   #/unit/<run>/<layer>/<channel> a unit: renders and examples at every checkpoint of every run, curves
//   #/image/<run>/<index>          a dataset image (with --dataset): heatmaps, semantic dictionary, caricatures
(function () {
  "use strict";
  var S = window.STUDY;
  var view = document.getElementById("view");
  var statusLine = document.getElementById("status");
  var LAYERS = window.STUDY_LAYERS = window.STUDY_LAYERS || {};
  var COLORS = ["#d33", "#26c", "#2a2", "#c80", "#829", "#099"];
  var SVGNS = "http://www.w3.org/2000/svg";
  var route = null;
  var shown = 0;  // counts page changes

  // ---- helpers ----------------------------------------------------------------------------------------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }
  function pad(n, w) { var s = String(n); while (s.length < w) s = "0" + s; return s; }
  function iterName(it) { return "iter_" + pad(it, 6); }
  function png(folder, run, it, layer, ch) {
    return folder + "/" + run + "/" + iterName(it) + "/" + layer + "/" + pad(ch, 4) + ".png";
  }
  function renderSrc(run, it, layer, ch) { return png("atlas", run, it, layer, ch); }
  function exampleSrc(run, it, layer, ch) { return png("examples", run, it, layer, ch); }
  function blockSrc(run, it, layer, kind, idx) {  // the building blocks' PNGs (study.pipeline.blocks_stage)
    var b = "blocks/" + run + "/", i5 = pad(idx, 5);
    if (kind === "heatmap") return b + "attribution/" + iterName(it) + "/" + layer + "_attribution_" + i5 + ".png";
    if (kind === "groups") return b + "groups/" + layer + "/" + iterName(it) + "/" + layer + "_groups.png";
    if (kind === "dictionary") return b + "groups/" + layer + "/" + iterName(it) + "/" + layer + "_dictionary_" + i5 + ".png";
    if (kind === "accentuation") {  // toward the layer's most-changed channel (study.pipeline.accentuations)
      var safe = layer.replace(/\//g, "_");
      return b + "accentuation/" + safe + "/" + iterName(it) + "/accentuation_" + i5 + "_" + safe + "_" +
        accentChannel(run, layer) + ".png";
    }
    return b + "caricature/" + iterName(it) + "/caricature_" + i5 + "_" + layer + ".png";
  }
  function accentChannel(run, layer) { return ((S.blocks || {})[run] || {}).accentuation[layer]; }
  function imageHash(run, idx) { return "#/image/" + encodeURIComponent(run) + "/" + idx; }
  function runNames() { return S.runs.map(function (r) { return r.name; }); }
  function runInfo(name) { return S.runs.filter(function (r) { return r.name === name; })[0]; }
  function layerEntry(name) { return S.layers.filter(function (l) { return l.name === name; })[0]; }
  function layerIndex(name) { return S.layers.map(function (l) { return l.name; }).indexOf(name); }
  function unitHash(run, layer, ch) { return "#/unit/" + [run, layer, ch].map(encodeURIComponent).join("/"); }
  function layerHash(layer, run) {
    return "#/layer/" + encodeURIComponent(layer) + (run ? "/" + encodeURIComponent(run) : "");
  }
  function longestRun() {
    return S.runs.reduce(function (a, r) { return r.iterations.length > a.iterations.length ? r : a; }, S.runs[0]);
  }
  function present(v) { return v !== null && v !== undefined; }
  function fmt(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d === undefined ? 3 : d); }
  function say(text) { statusLine.textContent = text || ""; }
  function link(href, text) { return el("a", { href: href, text: text }); }
  function img(src, alt, cls) { return el("img", { src: src, alt: alt, loading: "lazy", class: cls || "" }); }

  function drawn() {  // for tests and timings: this address is on screen
    document.body.setAttribute("data-drawn", location.hash);
    if (window.performance && performance.mark) performance.mark("drawn " + location.hash);
  }

  function go(hash) {
    if (location.hash === hash) show(); else location.hash = hash;  // assigning the hash pushes a history entry
  }

  // a layer's per-channel data: one <script> per layer, loaded when first needed
  function withLayer(name, fn) {
    if (LAYERS[name]) return fn(LAYERS[name]);
    var entry = layerEntry(name), ticket = shown;
    var s = el("script", { src: entry.file });
    s.onload = function () { if (ticket === shown) fn(LAYERS[name]); };  // unless another page came first
    s.onerror = function () { say("could not load " + entry.file); };
    document.head.appendChild(s);
  }

  // ---- charts: inline SVG, x = checkpoint (evenly spaced, labelled by iteration) --------------------------
  function chart(title, xs, series, opts) {
    opts = opts || {};
    var W = 380, H = 190, L = 44, R = 18, T = 22, B = 40;
    var svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("class", "chart"); svg.setAttribute("width", W); svg.setAttribute("height", H);
    function add(tag, attrs, text) {
      var e = document.createElementNS(SVGNS, tag);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      svg.appendChild(e); return e;
    }
    var vals = [];
    series.forEach(function (s) { vals = vals.concat(s.values.filter(present)); });
    var lo = opts.min !== undefined ? opts.min : Math.min.apply(null, vals.concat([Infinity]));
    var hi = opts.max !== undefined ? opts.max : Math.max.apply(null, vals.concat([-Infinity]));
    if (!isFinite(lo) || !isFinite(hi)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { hi = lo + 1; }
    var n = Math.max(xs.length, 2);
    function X(i) { return L + (W - L - R) * i / (n - 1); }
    function Y(v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); }
    add("text", { x: 4, y: 14, class: "title" }, title);
    add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
    add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
    var decimals = Math.min(6, Math.max(0, 2 - Math.floor(Math.log10(hi - lo))));  // ticks that differ
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      add("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }, v.toFixed(decimals));
    });
    var step = Math.ceil(xs.length / 8);
    xs.forEach(function (x, i) {
      if (i % step === 0 || i === xs.length - 1) add("text", { x: X(i), y: H - B + 12, "text-anchor": "middle" }, x);
    });
    add("text", { x: (L + W - R) / 2, y: H - B + 24, "text-anchor": "middle" }, opts.xlabel || "iteration");
    var lx = L + 4;
    series.forEach(function (s, k) {
      var d = "", pen = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = false; return; }
        d += (pen ? "L" : "M") + X(i).toFixed(1) + " " + Y(v).toFixed(1);
        pen = true;
        add("circle", { cx: X(i), cy: Y(v), r: 2.5, fill: s.color });
      });
      var p = add("path", { d: d, stroke: s.color });
      if (s.dash) p.setAttribute("stroke-dasharray", "4 3");
      add("text", { x: lx, y: H - 4, style: "fill: " + s.color }, s.name);
      lx += 8 + 6 * s.name.length;
    });
    return svg;
  }

  function sim(v) { return v === null || v === undefined ? null : 1 - v; }  // Procrustes similarity = 1 - d / 2

  // ---- pages ------------------------------------------------------------------------------------------
  function home() {
    document.title = "lucidtl study";
    var names = runNames();
    view.appendChild(el("h2", { text: "Study: " + names.join(", ") }));
    var saved = S.runs.map(function (r) { return r.name + ": iterations " + r.iterations.join(", "); });
    view.appendChild(el("p", { text: saved.join("; ") + ". Renders " + S.settings.size + " px, " +
      S.settings.steps + " steps." }));
    var series = names.map(function (name, k) {
      return { name: name, color: COLORS[k % COLORS.length], values: S.layers.map(function (l) {
        var c = l.curves[name]; return c ? c.cka[c.cka.length - 1] : null; }) };
    });
    var depth = S.layers.map(function (l, i) { return String(i); });
    view.appendChild(el("div", { class: "charts" }, [chart("CKA of the last checkpoint to the first, per layer", depth,
      series, { min: 0, max: 1, xlabel: "layer (input → output)" })]));
    var head = el("tr", {}, [el("th", { text: "layer" }), el("th", { text: "channels" })].concat(
      names.map(function (n) { return el("th", { text: "CKA to first, " + n }); })));
    var rows = S.layers.map(function (l) {
      var cells = names.map(function (n) {
        var c = l.curves[n]; return el("td", { text: c ? fmt(c.cka[c.cka.length - 1]) : "–" });
      });
      return el("tr", {}, [el("td", {}, [link(layerHash(l.name), l.name)]), el("td", { text: String(l.channels) })]
        .concat(cells));
    });
    view.appendChild(el("table", { class: "layers" }, [head].concat(rows)));
    if (S.activation_atlas) view.appendChild(el("p", {}, [el("a", { id: "activation-atlas-link",
      href: "activation_atlas.html#/", text: "activation atlases" }), el("span", { text: " (each layer's activation " +
      "space, one layout along the run)" })]));
    Object.keys(S.blocks || {}).forEach(function (rn) {
      view.appendChild(el("p", { class: "images" }, [el("span", { text: "Dataset images of " + rn + ": " })].concat(
        S.blocks[rn].images.map(function (i) { return link(imageHash(rn, i), "image " + i); }))));
    });
    drawn();
  }

  function blocksSection(D, name, run, its) {  // a layer's neuron groups and the channels carrying each class
    var R = D.runs[run], out = [];
    if (!R.groups && !R.carriers) return out;
    var G = R.groups;
    if (G && G.skipped) out.push(el("p", { class: "skipped", text: "No neuron groups: " + G.skipped }));
    else if (G) {
      out.push(el("h3", { text: "Neuron groups in " + run + " (NMF refit at each checkpoint, matched to iteration " +
        its[0] + "'s; each rendered as a direction in channel space)" }));
      var strip = el("div", { class: "strip groups" });
      its.forEach(function (it, k) {
        if (!G.weight[k]) return;
        strip.appendChild(el("figure", { "data-iteration": it }, [img(blockSrc(run, it, name, "groups"),
          "neuron groups of " + name + " at " + it, "groups"), el("figcaption", { text: "iter " + it + " · error " +
          fmt(G.error_refit[k]) })]));
      });
      out.push(strip);
      var k0 = (G.weight.filter(present)[0] || []).length, series = [];
      for (var g = 0; g < k0; g++) {
        series.push({ name: "group " + g, color: COLORS[g % COLORS.length], values: G.weight.map(function (w) {
          return w ? w[g] : null; }) });
      }
      out.push(el("div", { class: "charts" }, [chart("each group's mean weight (refit, matched)", its, series),
        chart("reconstruction error", its, [{ name: "groups of iteration " + its[0], color: COLORS[0],
          values: G.error_fixed }, { name: "refit", color: COLORS[1], values: G.error_refit }])]));
    }
    if (R.carriers && S.blocks[run]) {
      var classes = S.blocks[run].classes;
      out.push(el("h3", { text: "Channels that carry each class in " + run + " (attribution to the class logit, " +
        "mean over the images; top 5)" }));
      var headRow = el("tr", {}, [el("th", { text: "class" })].concat(its.map(function (it) {
        return el("th", { text: "iter " + it }); })));
      var rows = classes.map(function (c, k) {
        return el("tr", { "data-class": c }, [el("td", { text: c })].concat(its.map(function (it, j) {
          var cell = el("td", { class: "carriers" });
          (R.carriers[j] ? R.carriers[j][k] : []).forEach(function (e) {
            var a = D.channels.indexOf(e[1]) >= 0 ? link(unitHash(run, name, e[1]), "#" + e[1]) :
              el("span", { text: "#" + e[1] });
            cell.appendChild(a); cell.appendChild(el("span", { class: "help", text: " " + fmt(e[2], 3) + " " }));
          });
          return cell;
        })));
      });
      out.push(el("table", { class: "carriers" }, [headRow].concat(rows)));
    }
    return out;
  }

  function imagePage(run, idx) {
    document.title = run + " image " + idx + " — lucidtl study";
    var info = runInfo(run), B = (S.blocks || {})[run];
    if (!info || !B || B.images.indexOf(idx) < 0) {
      view.appendChild(el("p", { id: "missing-image", text: "image " + idx + " of " + run + " is not in this study. " },
        [link("#/", "home")]));
      return drawn();
    }
    view.appendChild(el("h2", { id: "image-title", text: run + " / dataset image " + idx }, [el("span", {
      class: "nav" }, B.images.map(function (i) { return i === idx ? null : link(imageHash(run, i), "image " + i); }))]));
    view.appendChild(el("p", { class: "help", text: "Per layer and checkpoint: attribution heatmaps to each class " +
      "(orange: for the class, blue: against), the semantic dictionary (each position shows its dominant neuron " +
      "group's render), the caricature (an image optimised to match this image's activations) and the feature " +
      "accentuation (this image pushed toward the layer's most-changed channel, its earlier layer kept close)." }));
    S.layers.forEach(function (l) {
      var strip = el("div", { class: "strip image-strip", "data-layer": l.name });
      info.iterations.forEach(function (it) {
        strip.appendChild(el("figure", { "data-iteration": it }, [
          img(blockSrc(run, it, l.name, "heatmap", idx), "attribution " + l.name + " " + it, "heatmap"),
          B.no_groups.indexOf(l.name) < 0 ? img(blockSrc(run, it, l.name, "dictionary", idx),
            "semantic dictionary " + l.name + " " + it, "dictionary") : null,
          img(blockSrc(run, it, l.name, "caricature", idx), "caricature " + l.name + " " + it, "caricature"),
          present((B.accentuation || {})[l.name]) ? img(blockSrc(run, it, l.name, "accentuation", idx),
            "accentuation " + l.name + ":" + B.accentuation[l.name] + " " + it, "accentuation") : null,
          el("figcaption", { text: "iter " + it })]));
      });
      view.appendChild(el("section", { class: "image-layer" }, [el("h3", {}, [link(layerHash(l.name, run), l.name)]),
        strip]));
    });
    drawn();
  }

  function layerPage(name, run) {
    var entry = layerEntry(name);
    run = run || S.runs[0].name;
    document.title = name + " — lucidtl study";
    withLayer(name, function (D) {
      var i = layerIndex(name);
      var nav = el("span", { class: "nav" }, [
        i > 0 ? link(layerHash(S.layers[i - 1].name, run), "↑ " + S.layers[i - 1].name) : null,
        i < S.layers.length - 1 ? link(layerHash(S.layers[i + 1].name, run), "↓ " + S.layers[i + 1].name) : null]);
      view.appendChild(el("h2", { text: name + " (" + D.channels.length + " channels) " }, [nav]));
      var charts = el("div", { class: "charts" });
      var longest = longestRun();
      [["cka", "linear CKA to the first checkpoint", 0, 1],
       ["procrustes_norm", "Procrustes distance / 2 to the first", 0, 1],
       ["pwsm_theta", "PWSM angle to the first (rad)", 0, Math.PI / 2]].forEach(function (m) {
        var series = runNames().map(function (rn, k) {
          var c = entry.curves[rn]; return { name: rn, color: COLORS[k % COLORS.length], values: c ? c[m[0]] : [] };
        });
        Object.keys(S.between).forEach(function (key, k) {
          var b = S.between[key].layers[name];
          if (b) series.push({ name: key.replace("~", " vs "), color: "#555", dash: true, values: b[m[0]] });
        });
        charts.appendChild(chart(m[1], longest.iterations, series, { min: m[2], max: m[3] }));
      });
      view.appendChild(charts);
      var tabs = runNames().map(function (rn) {
        var a = link(layerHash(name, rn), rn); if (rn === run) a.className = "current"; return a;
      });
      view.appendChild(el("div", { class: "tabs" }, [el("span", { text: "rank by run: " })].concat(tabs)));
      var R = D.runs[run], its = runInfo(run).iterations, last = its.length - 1;
      blocksSection(D, name, run, its).forEach(function (e) { view.appendChild(e); });
      view.appendChild(el("h3", { text: "Channels ranked by how much they changed in " + run +
        " (Procrustes distance / 2 of iteration " + its[last] + " to iteration " + its[0] + ", largest first)" }));
      var order = D.channels.map(function (c, j) { return j; });
      var change = function (j) { var v = R.procrustes_norm[last][j]; return v === null ? -1 : v; };
      order.sort(function (a, b) { return change(b) - change(a) || a - b; });
      var missing = D.channels.filter(function (c, j) { return !present(R.procrustes_norm[last][j]); }).length;
      if (missing) {  // say why a tile has no distance instead of a bare "d –"
        view.appendChild(el("p", { class: "note", id: "no-change-note", text: missing + " of " + D.channels.length +
          " channels have no change value (d –): " + (its.length < 2 ? "the run has a single checkpoint, so " +
          "there is nothing to compare" : "a channel's Procrustes distance needs an activation map that varies " +
          "over the probe images at both iterations; these channels are constant there (dead, e.g. with random " +
          "weights) or the layer has no spatial map") + ". They are ranked last." }));
      }
      var T = R.trust ? R.trust.units : null;
      var unitTrust = function (ch) { return T ? T[String(ch)] : null; };
      var filters = { beyond: false, reach: 0 };
      if (T) {  // how far to believe each change: the seed-noise check of the most-changed channels
        var checked = Object.keys(T), within = checked.filter(function (c) { return !T[c].beyond; });
        view.appendChild(el("p", { class: "note", id: "seed-noise-note", text: "Seed noise: the " + checked.length +
          " most-changed channels were drawn with " + R.trust.seeds + " seeds at iterations " +
          R.trust.iterations.join(" and ") + ". " + (checked.length - within.length) + " changed beyond the spread " +
          "between seeds (flagged ✓); " + within.length + " did not (✗: their pictures differ between seeds as " +
          "much as between checkpoints), and are ranked after them." }));
        var box = el("input", { type: "checkbox", id: "only-beyond" });
        var reachSel = el("select", { id: "min-reach" }, [0, 0.25, 0.5, 1].map(function (v) {
          return el("option", { value: String(v), text: v ? "reach ≥ " + v : "any reach" }); }));
        box.addEventListener("change", function () { filters.beyond = box.checked; drawGrid(); });
        reachSel.addEventListener("change", function () { filters.reach = Number(reachSel.value); drawGrid(); });
        view.appendChild(el("div", { class: "filters" }, [el("label", {}, [box,
          el("span", { text: " only changes beyond seed noise " })]), reachSel]));
        var noise = function (ch) { var t = unitTrust(ch); return t && !t.beyond ? 1 : 0; };
        order.sort(function (a, b) { return noise(D.channels[a]) - noise(D.channels[b]); });  // stable: keeps rank
      }
      var grid = el("div", { class: "ranked", id: "ranked" });
      function drawGrid() {
        while (grid.firstChild) grid.removeChild(grid.firstChild);
        order.forEach(function (j, rank) {
          var ch = D.channels[j], t = unitTrust(ch);
          if (filters.beyond && !(t && t.beyond)) return;
          if (filters.reach && !(t && present(t.reach) && t.reach >= filters.reach)) return;
          var flag = t ? (t.beyond ? " · ✓ beyond seed noise" : " · ✗ within seed noise") +
            (present(t.reach) ? " · reach " + fmt(t.reach, 2) : "") : "";
          var tile = el("a", { class: "tile" + (t && !t.beyond ? " noise" : ""), href: unitHash(run, name, ch),
                               "data-channel": ch }, [
            present(R.objective[0][j]) ? img(renderSrc(run, its[0], name, ch), name + ":" + ch + " at " + its[0]) : null,
            present(R.objective[last][j]) ? img(renderSrc(run, its[last], name, ch), name + ":" + ch + " at " +
                                                its[last]) : null,
            el("div", { text: "iter " + its[0] + " → " + its[last] }),
            el("div", {}, [el("span", { class: "chan", text: "#" + ch }),
              el("span", { text: "  d " + fmt(R.procrustes_norm[last][j]) + " · rank " + (rank + 1) + flag })])]);
          grid.appendChild(tile);
        });
      }
      drawGrid();
      view.appendChild(grid);
      drawn();
    });
  }

  function unitPage(run, name, ch) {
    document.title = run + "/" + name + ":" + ch + " — lucidtl study";
    withLayer(name, function (D) {
      var j = D.channels.indexOf(ch);
      if (j < 0 || !D.runs[run]) {
        var what = (D.runs[run] ? name + ":" + ch : "run " + run) + " is not in this study (" + name +
          " has channels " + D.channels.join(", ") + "; runs " + runNames().join(", ") + "). ";
        view.appendChild(el("p", { id: "missing-unit", text: what }, [
          link(layerHash(name, D.runs[run] ? run : S.runs[0].name), "open layer " + name)]));
        return drawn();
      }
      var nav = el("span", { class: "nav" }, [
        link(layerHash(name, run), "layer " + name),
        j > 0 ? link(unitHash(run, name, D.channels[j - 1]), "← " + D.channels[j - 1]) : null,
        j < D.channels.length - 1 ? link(unitHash(run, name, D.channels[j + 1]), D.channels[j + 1] + " →") : null]);
      view.appendChild(el("h2", { id: "unit-title", text: run + " / " + name + " : " + ch }, [nav]));
      var names = runNames();
      var ordered = [run].concat(names.filter(function (n) { return n !== run; }));
      ordered.forEach(function (rn) {
        var R = D.runs[rn], its = runInfo(rn).iterations;
        var title = rn === run ? el("h3", { text: rn }) : el("h3", {}, [link(unitHash(rn, name, ch), rn)]);
        var strip = el("div", { class: "strip" });
        its.forEach(function (it, k) {
          var o = R.objective[k][j];
          var fig = el("figure", { "data-run": rn, "data-iteration": it }, [
            present(o) ? img(renderSrc(rn, it, name, ch), rn + " " + name + ":" + ch + " iteration " + it, "render")
                       : el("div", { class: "missing", text: "not rendered" }),
            el("figcaption", { text: "iter " + it + " · obj " + fmt(o, 2) })]);
          if (R.examples[k] && R.examples[k][j]) {
            fig.appendChild(img(exampleSrc(rn, it, name, ch),
                                "dataset examples " + rn + " " + name + ":" + ch + " iteration " + it, "examples"));
          }
          strip.appendChild(fig);
        });
        var cls = "run" + (rn === run ? " current" : "");
        view.appendChild(el("section", { class: cls, "data-run": rn }, [title, strip]));
      });
      var charts = el("div", { class: "charts" });
      var its = longestRun().iterations;
      function per(key, f) {
        return names.map(function (rn, k) {
          var R = D.runs[rn], mine = runInfo(rn).iterations;
          return { name: rn, color: COLORS[k % COLORS.length], values: its.map(function (it) {
            var p = mine.indexOf(it); if (p < 0 || !R[key][p]) return null; return f(R[key][p][j]); }) };
        });
      }
      var id = function (v) { return v; };
      var simSeries = per("procrustes_norm", sim);
      Object.keys(D.between).forEach(function (key) {
        var b = D.between[key];
        simSeries.push({ name: key.replace("~", " vs "), color: "#555", dash: true, values: its.map(function (it) {
          var p = b.iterations.indexOf(it); return p < 0 ? null : sim(b.procrustes_norm[p][j]); }) });
      });
      charts.appendChild(chart("similarity to iteration " + its[0] + " (1 − Procrustes/2)", its, simSeries,
                               { min: 0, max: 1 }));
      charts.appendChild(chart("map CKA to iteration " + its[0], its, per("cka", id), { min: 0, max: 1 }));
      charts.appendChild(chart("objective (mean activation of the render)", its, per("objective", id)));
      charts.appendChild(chart("dominant spatial period of the render (px)", its, per("period", id)));
      var A = D.runs[run].attribution, B = (S.blocks || {})[run];
      if (A && B) {
        var mine = runInfo(run).iterations;
        charts.appendChild(chart("attribution of " + ch + " to each class in " + run, mine,
          B.classes.slice(0, 6).map(function (c, k) {
            return { name: c, color: COLORS[k % COLORS.length], values: mine.map(function (it, p) {
              return A[p] ? A[p][k][j] : null; }) };
          })));
      }
      var TR = D.runs[run].trust, tu = TR ? TR.units[String(ch)] : null;
      if (tu) {  // how far to believe these pictures (lucidtl.analysis.trust)
        var rows = [["change " + TR.iterations.join(" → ") + " (RMS between the seeds' pictures)", fmt(tu.change)],
                    ["spread between " + TR.seeds + " seeds (same checkpoint)", fmt(tu.spread)],
                    ["beyond seed noise", tu.beyond ? "yes" : "no"],
                    ["reach at " + TR.iterations[1] + " (picture ÷ top dataset image)", fmt(tu.reach, 2)]];
        Object.keys(tu.path_similarity || {}).forEach(function (lay) {
          var p = tu.path_similarity[lay];
          rows.push(["path similarity at " + lay + " (picture / random images' floor)",
                     fmt(p.picture, 2) + " / " + fmt(p.floor, 2)]);
        });
        view.appendChild(el("h3", { text: "How far to believe these pictures" }));
        view.appendChild(el("table", { class: "trust", id: "unit-trust" }, rows.map(function (r) {
          return el("tr", {}, [el("td", { text: r[0] }), el("td", { text: r[1] })]); })));
      }
      view.appendChild(el("h3", { text: "Over iterations" }));
      view.appendChild(charts);
      drawn();
    });
  }

  // ---- routing, search, keys ----------------------------------------------------------------------------
  function parse() {
    var parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    if (parts[0] === "unit" && parts.length === 4 && layerEntry(parts[2]) && /^\d+$/.test(parts[3])) {
      return { page: "unit", run: parts[1], layer: parts[2], channel: parseInt(parts[3], 10) };
    }
    if (parts[0] === "image" && parts.length === 3 && /^\d+$/.test(parts[2])) {
      return { page: "image", run: parts[1], index: parseInt(parts[2], 10) };
    }
    if (parts[0] === "layer" && layerEntry(parts[1])) {
      return { page: "layer", layer: parts[1], run: runInfo(parts[2]) ? parts[2] : null };
    }
    return { page: "home" };
  }

  function show() {
    shown += 1;
    route = parse();
    view.innerHTML = "";
    window.scrollTo(0, 0);
    if (route.page === "unit") unitPage(route.run, route.layer, route.channel);
    else if (route.page === "image") imagePage(route.run, route.index);
    else if (route.page === "layer") layerPage(route.layer, route.run);
    else home();
  }

  function findLayer(q) {
    var names = S.layers.map(function (l) { return l.name; }), low = q.toLowerCase();
    var tests = [function (n) { return n === q; }, function (n) { return n.toLowerCase() === low; },
      function (n) { return n.toLowerCase() === "mixed_" + low; },
      function (n) { return n.toLowerCase().slice(-low.length - 1) === "_" + low; },
      function (n) { return n.toLowerCase().indexOf(low) >= 0; }];
    for (var t = 0; t < tests.length; t++) {
      var hits = names.filter(tests[t]);
      if (hits.length) return hits.sort(function (a, b) { return a.length - b.length; })[0];
    }
    return null;
  }

  function search(text) {
    if (/^\s*\d+\s*$/.test(text) && route && route.layer) {  // a channel of the layer on screen
      return go(unitHash(route.run || S.runs[0].name, route.layer, parseInt(text, 10)));
    }
    var m = /^\s*(?:([^\/\s]+)\/)?([^:\s]+)(?::(\d+))?\s*$/.exec(text);
    var layer = m && findLayer(m[2]);
    if (!layer) { say("no layer matches " + JSON.stringify(text) + "; try e.g. " + S.layers[0].name + ":0"); return; }
    var run = m[1] && runInfo(m[1]) ? m[1] : (route && route.run) || S.runs[0].name;
    say("");
    go(m[3] === undefined ? layerHash(layer, run) : unitHash(run, layer, parseInt(m[3], 10)));
  }

  function move(kind, d) {
    if (!route || route.page === "home" || route.page === "image") return;
    var i = layerIndex(route.layer), names = runNames();
    if (kind === "layer") {
      var next = S.layers[i + d];
      if (!next) return;
      if (route.page === "layer") return go(layerHash(next.name, route.run));
      return withLayer(next.name, function (D) {
        var j = 0;  // the nearest chosen channel
        D.channels.forEach(function (c, k) {
          if (Math.abs(c - route.channel) < Math.abs(D.channels[j] - route.channel)) j = k;
        });
        go(unitHash(route.run, next.name, D.channels[j]));
      });
    }
    if (kind === "run") {
      var r = names[names.indexOf(route.run || names[0]) + d];
      if (!r) return;
      return go(route.page === "unit" ? unitHash(r, route.layer, route.channel) : layerHash(route.layer, r));
    }
    if (route.page === "unit") {
      withLayer(route.layer, function (D) {
        var c = D.channels[D.channels.indexOf(route.channel) + d];
        if (c !== undefined) go(unitHash(route.run, route.layer, c));
      });
    }
  }

  document.getElementById("search-form").addEventListener("submit", function (e) {
    e.preventDefault();
    search(document.getElementById("search").value);
  });
  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.altKey || e.ctrlKey || e.metaKey) return;
    var keys = { ArrowLeft: ["channel", -1], ArrowRight: ["channel", 1], ArrowUp: ["layer", -1],
                 ArrowDown: ["layer", 1], "[": ["run", -1], "]": ["run", 1] };
    if (e.key === "/") { e.preventDefault(); document.getElementById("search").focus(); return; }
    if (keys[e.key]) { e.preventDefault(); move(keys[e.key][0], keys[e.key][1]); }
  });
  window.addEventListener("hashchange", function () { say(""); show(); });
  show();
})();

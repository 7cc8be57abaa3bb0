// The atlas browser: state = (checkpoint index, layer, channel), mirrored in location.hash.
(function () {
  "use strict";
  var A = window.ATLAS;
  var state = { ckpt: 0, layer: A.layers[0], channel: 0 };
  var $ = function (id) { return document.getElementById(id); };

  function pad4(n) { return ("000" + n).slice(-4); }
  function src(c, layer, ch) { return A.root + "/" + A.checkpoints[c].label + "/" + layer + "/" + pad4(ch) + ".png"; }
  function channels(c, layer) {
    var m = A.images[c + "|" + layer] || {};
    return Object.keys(m).map(Number).sort(function (a, b) { return a - b; });
  }
  function value(c, layer, ch) { var m = A.images[c + "|" + layer] || {}; return m[String(ch)]; }
  function runOf(c) { return A.checkpoints[c].run; }
  function ckptName(c) { var k = A.checkpoints[c]; return k.iteration === null ? k.label : "iter " + k.iteration; }

  function figure(c, layer, ch, caption, onclick) {
    var f = document.createElement("figure");
    var img = document.createElement("img");
    img.loading = "lazy";
    img.alt = A.checkpoints[c].label + " " + layer + ":" + ch;
    if (value(c, layer, ch) !== undefined) img.src = src(c, layer, ch);
    img.dataset.ckpt = A.checkpoints[c].label;
    img.dataset.channel = ch;
    if (onclick) img.addEventListener("click", onclick);
    var cap = document.createElement("figcaption");
    cap.textContent = caption;
    f.appendChild(img);
    f.appendChild(cap);
    return f;
  }

  function options(select, items, selected) {
    select.innerHTML = "";
    items.forEach(function (it) {
      var o = document.createElement("option");
      o.value = it[0]; o.textContent = it[1];
      if (String(it[0]) === String(selected)) o.selected = true;
      select.appendChild(o);
    });
  }

  function clamp() {
    var chans = channels(state.ckpt, state.layer);
    if (chans.length && chans.indexOf(state.channel) < 0) {
      state.channel = chans.reduce(function (best, c) {
        return Math.abs(c - state.channel) < Math.abs(best - state.channel) ? c : best; }, chans[0]);
    }
  }

  function hash() {
    return "#ckpt=" + encodeURIComponent(A.checkpoints[state.ckpt].label) + "&layer=" +
      encodeURIComponent(state.layer) + "&channel=" + state.channel;
  }

  function readHash() {
    var h = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var p = kv.split("="); if (p.length === 2) h[p[0]] = decodeURIComponent(p[1]);
    });
    A.checkpoints.forEach(function (k, i) { if (k.label === h.ckpt) state.ckpt = i; });
    if (A.layers.indexOf(h.layer) >= 0) state.layer = h.layer;
    if (h.channel !== undefined && !isNaN(parseInt(h.channel, 10))) state.channel = parseInt(h.channel, 10);
  }

  function draw() {
    clamp();
    var c = state.ckpt, layer = state.layer, ch = state.channel, run = runOf(c), inRun = A.runs[run];
    options($("run"), Object.keys(A.runs).map(function (r) { return [r, r]; }), run);
    options($("ckpt"), inRun.map(function (i) { return [i, ckptName(i)]; }), c);
    options($("layer"), A.layers.map(function (l) { return [l, l]; }), layer);
    $("channel").value = ch;
    $("title").textContent = A.checkpoints[c].label + "  " + layer + ":" + ch;
    $("main-img").src = src(c, layer, ch);
    $("main-img").alt = layer + ":" + ch;
    var v = value(c, layer, ch);
    $("value").textContent = v === undefined ? "not rendered" : "mean activation " + v;

    var pp = $("prepost"); pp.innerHTML = "";
    pp.appendChild(figure(inRun[0], layer, ch, "pre (" + ckptName(inRun[0]) + ")"));
    pp.appendChild(figure(inRun[inRun.length - 1], layer, ch, "post (" + ckptName(inRun[inRun.length - 1]) + ")"));

    var strip = $("temporal"); strip.innerHTML = "";
    inRun.forEach(function (i) {
      var f = figure(i, layer, ch, ckptName(i), function () { go({ ckpt: i }); });
      if (i === c) f.className = "selected";
      strip.appendChild(f);
    });

    var grid = $("grid"); grid.innerHTML = "";
    $("grid-title").textContent = layer + " at " + A.checkpoints[c].label;
    channels(c, layer).forEach(function (k) {
      var img = document.createElement("img");
      img.loading = "lazy";
      img.src = src(c, layer, k);
      img.alt = layer + ":" + k;
      img.title = layer + ":" + k;
      img.dataset.channel = k;
      if (k === ch) img.className = "selected";
      img.addEventListener("click", function () { go({ channel: k }); });
      grid.appendChild(img);
    });
    $("permalink").href = hash();
    if (location.hash !== hash()) history.replaceState(null, "", hash());
  }

  function go(change) {
    for (var k in change) state[k] = change[k];
    draw();
  }

  function step(kind, d) {
    if (kind === "channel") {
      var chans = channels(state.ckpt, state.layer), i = chans.indexOf(state.channel) + d;
      if (i >= 0 && i < chans.length) go({ channel: chans[i] });
    } else if (kind === "layer") {
      var j = A.layers.indexOf(state.layer) + d;
      if (j >= 0 && j < A.layers.length) go({ layer: A.layers[j] });
    } else {
      var inRun = A.runs[runOf(state.ckpt)], p = inRun.indexOf(state.ckpt) + d;
      if (p >= 0 && p < inRun.length) go({ ckpt: inRun[p] });
    }
  }

  document.addEventListener("keydown", function (e) {
    if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
    var keys = { ArrowLeft: ["channel", -1], ArrowRight: ["channel", 1], ArrowUp: ["layer", -1],
                 ArrowDown: ["layer", 1], "[": ["ckpt", -1], "]": ["ckpt", 1] };
    if (keys[e.key]) { e.preventDefault(); step(keys[e.key][0], keys[e.key][1]); }
  });
  $("run").addEventListener("change", function () {
    var inRun = A.runs[this.value], p = A.runs[runOf(state.ckpt)].indexOf(state.ckpt);
    go({ ckpt: inRun[Math.min(p, inRun.length - 1)] });
  });
  $("ckpt").addEventListener("change", function () { go({ ckpt: parseInt(this.value, 10) }); });
  $("layer").addEventListener("change", function () { go({ layer: this.value }); });
  $("channel").addEventListener("change", function () { go({ channel: parseInt(this.value, 10) || 0 }); });
  window.addEventListener("hashchange", function () { readHash(); draw(); });
  readHash();
  draw();
})();

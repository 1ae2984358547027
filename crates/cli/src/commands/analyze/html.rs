//! The `--html` page: one file, no external resources. The analysis is
//! embedded as JSON; a small script draws the per-layer size bar chart (SVG)
//! and the final filesystem as a collapsible tree.

use rbk_build::Analysis;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.summary span { margin-right: 24px; }
#chart svg { border: 1px solid #ddd; background: #fafafa; }
#chart rect.bar { fill: #3a7bd5; } #chart rect.waste { fill: #e0584f; }
#chart text { font-size: 11px; fill: #333; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
#tree details { margin-left: 16px; } #tree summary { cursor: pointer; }
#tree .file { margin-left: 32px; } .size { color: #777; margin-left: 8px; }
.finding { border-left: 4px solid #e0a800; padding: 4px 10px; margin: 8px 0; background: #fff8e1; }
"#;

const SCRIPT: &str = r#"
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("analysis").textContent);
  function human(n) {
    var units = ["B", "kB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }
  function el(name, attrs, text) {
    var ns = name === "svg" || name === "rect" || name === "text" || name === "title"
      ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml";
    var e = document.createElementNS(ns, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  // Per-layer size bar chart; layers holding wasted files in red.
  var layers = data.layers, max = 1;
  layers.forEach(function (l) { if (l.size > max) { max = l.size; } });
  var wastedBy = {};
  data.top_wasted.forEach(function (w) { w.layers.forEach(function (i) { wastedBy[i] = true; }); });
  var rowH = 26, labelW = 70, width = 720, chartW = width - labelW - 110;
  var svg = el("svg", { width: width, height: Math.max(rowH * layers.length + 10, 40), id: "layer-chart" });
  layers.forEach(function (l, i) {
    var y = 5 + i * rowH, w = Math.max(2, Math.round(chartW * l.size / max));
    svg.appendChild(el("text", { x: 4, y: y + 16 }, "layer " + l.index));
    var bar = el("rect", { x: labelW, y: y + 3, width: w, height: rowH - 8,
      "class": wastedBy[l.index] ? "bar waste" : "bar", "data-layer": l.index });
    bar.appendChild(el("title", {}, l.instruction));
    svg.appendChild(bar);
    svg.appendChild(el("text", { x: labelW + w + 6, y: y + 16 }, human(l.size)));
  });
  document.getElementById("chart").appendChild(svg);
  // The final filesystem as a tree of <details>.
  var root = { children: {}, size: 0 };
  data.files.forEach(function (f) {
    var parts = f.path.split("/"), node = root;
    parts.forEach(function (p, i) {
      if (!node.children[p]) { node.children[p] = { children: {}, size: 0, dir: i < parts.length - 1 }; }
      node = node.children[p];
      node.size += f.dir ? 0 : f.size;
    });
    node.dir = f.dir; node.layer = f.layer;
  });
  function render(node, parent) {
    Object.keys(node.children).sort().forEach(function (name) {
      var child = node.children[name];
      if (child.dir) {
        var d = el("details"), s = el("summary", {}, name + "/");
        s.appendChild(el("span", { "class": "size" }, human(child.size)));
        d.appendChild(s);
        render(child, d);
        parent.appendChild(d);
      } else {
        var f = el("div", { "class": "file" }, name);
        f.appendChild(el("span", { "class": "size" }, human(child.size) + " · layer " + child.layer));
        parent.appendChild(f);
      }
    });
  }
  render(root, document.getElementById("tree"));
  document.body.setAttribute("data-rendered", "true");
})();
"#;

/// The page for `name`.
pub(super) fn page(name: &str, a: &Analysis) -> String {
    let json = serde_json::to_string(a).unwrap_or_else(|_| "{}".into());
    // Keep `</script>` inside the data from closing the element.
    let json = json.replace("</", "<\\/");
    let mut rows = String::new();
    for l in &a.layers {
        rows.push_str(&format!(
            "<tr><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td><code>{}</code></td></tr>\n",
            l.index, l.size, l.added, l.changed, l.removed, escape(&l.instruction)
        ));
    }
    let mut wasted = String::new();
    for w in &a.top_wasted {
        wasted.push_str(&format!(
            "<tr><td class=num>{}</td><td><code>/{}</code></td></tr>\n",
            w.wasted,
            escape(&w.path)
        ));
    }
    let mut findings = String::new();
    for f in &a.findings {
        findings.push_str(&format!(
            "<div class=finding><b>{}</b>: {}<br><i>Fix:</i> {}</div>\n",
            f.rule.name,
            escape(&f.message),
            escape(f.rule.fix)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\
         <title>rbk analyze {title}</title><link rel=icon href=\"data:,\"><style>{STYLE}</style></head>\n<body>\n\
         <h1>rbk analyze {title}</h1>\n\
         <p class=summary><span>Image <code>{id}</code></span><span>Total {total} bytes</span>\
         <span>Wasted {wasted_bytes} bytes</span><span>Efficiency {eff:.2} %</span></p>\n\
         <h2>Layer sizes</h2><div id=chart></div>\n\
         <h2>Layers</h2><table><tr><th>#</th><th>Size</th><th>Added</th><th>Changed</th><th>Removed</th><th>Instruction</th></tr>\n{rows}</table>\n\
         <h2>Top wasted paths</h2><table><tr><th>Wasted</th><th>Path</th></tr>\n{wasted}</table>\n\
         <h2>Findings</h2>{findings}\n\
         <h2>Files</h2><div id=tree></div>\n\
         <script type=\"application/json\" id=analysis>{json}</script>\n<script>{SCRIPT}</script>\n</body></html>\n",
        title = escape(name),
        id = a.id,
        total = a.total,
        wasted_bytes = a.wasted,
        eff = a.efficiency * 100.0,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

"""The interactive embedding in the page: a canvas (fast for 10^4 points), a toggle between
embeddings, a legend, hover pictures, lasso and box selection, and the selection file
(``disca_engine/selection.py``) shown and offered as a download. Plain JavaScript, written
for this report, inline: the page stays one file that opens offline.

Test hook: ``index.html#selftest=lasso:x,y;x,y;...`` (or ``box:x1,y1;x2,y2``, coordinates in
the embedding's [0, 1] units, y up), optionally ``&space=descriptors``, dispatches real
pointer events on the canvas and writes the selection into ``#explorer-selftest``;
``#selftest=hover:I`` moves the pointer onto point I and writes its tooltip there;
``#selftest=legend:C`` clicks cluster C's legend entry (selects its points)."""
import json

from .html import esc
from ..selection import COLUMNS, TITLE

W, H, MARGIN = 640, 520, 12

STYLE = """
#explorer{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}
#explorer canvas{border:1px solid #999;cursor:crosshair;touch-action:none}
#explorer .legend{font-size:.85em;max-height:520px;overflow:auto}
#explorer .legend div{white-space:nowrap;cursor:pointer}
#explorer-tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #666;
 padding:3px 5px;font-size:.8em;display:none;z-index:9}
#explorer-tip img{image-rendering:pixelated;width:219px;display:block}
#explorer-selection{max-height:12em;overflow:auto;background:#f4f4f4;font-size:.8em}
"""


def section(data):
    """HTML (elements, data and script) of the explorer, or a note when there is no data."""
    if not data:
        return ("<p>No features in this folder (a predict folder, or an old run): no "
                "interactive embedding.</p>")
    payload = json.dumps({**data, "title": TITLE, "columns": COLUMNS,
                          "canvas": [W, H, MARGIN]}).replace("</", "<\\/")
    radios = "".join(
        f'<label><input type="radio" name="explorer-space" value="{i}"{" checked" if i == 0 else ""}>'
        f" {esc(s['label'])}</label> " for i, s in enumerate(data["spaces"]))
    return (f"<style>{STYLE}</style>{_help(data)}"
            f'<div>Embedding: {radios} &nbsp; Tool: <label><input type="radio" name="explorer-tool" '
            'value="lasso" checked> lasso</label> <label><input type="radio" name="explorer-tool" '
            'value="box"> box</label> &nbsp; <button type="button" id="explorer-clear">clear</button> '
            '<button type="button" id="explorer-download">Download selection</button></div>'
            f'<div id="explorer"><canvas width="{W}" height="{H}"></canvas>'
            '<div class="legend"></div></div><div id="explorer-tip"></div>'
            '<p id="explorer-count">nothing selected</p><pre id="explorer-selection"></pre>'
            '<pre id="explorer-selftest" hidden></pre>'
            f'<script type="application/json" id="explorer-data">{payload}</script>'
            f"<script>{SCRIPT}</script>")


def _help(data):
    shown, total = len(data["rows"]), data["total"]
    which = (f"all {total} subtomograms" if shown == total else
             f"{shown} of {total} subtomograms (a seeded random subsample, the same on every run; "
             "raise --embedding-points to show more, the page stays usable at 10,000)")
    pics = ("every point" if shown <= data["max_thumbnails"] else
            f"{data['max_thumbnails']} of the points (a seeded random subset; the others show "
            "their scores only)")
    missing = "" if len(data["spaces"]) > 1 else (
        " Only the network features are available: the rotation-invariant descriptors are "
        "saved by the auto preset's runs (<code>iterations/descriptors.npy</code>).")
    return ('<div class="help">Each dot is a subtomogram, placed by the chosen iteration\'s '
            "network features or by the rotation-invariant descriptors the auto method starts "
            f"from, and coloured by cluster. It shows {which}. Hover a dot for its central xy, "
            f"xz and yz slices (for {pics}), cluster, posterior and image. Drag a lasso (or a "
            "box) to select dots, or click a cluster in the legend; hold Shift to add to the "
            "selection. <b>Download selection</b> "
            "saves <code>disca-selection.tsv</code> (also shown below): give it to "
            "<code>disca-engine subset --clusters RUN --selection disca-selection.tsv --output "
            "selected.star</code> or to Scipion's <i>export clusters</i> (Selection file)."
            f"{missing}</div>")


SCRIPT = r"""
(function () {
  var D = JSON.parse(document.getElementById('explorer-data').textContent);
  var cv = document.querySelector('#explorer canvas'), g = cv.getContext('2d');
  var W = D.canvas[0], H = D.canvas[1], M = D.canvas[2], n = D.rows.length;
  var tip = document.getElementById('explorer-tip');
  var space = 0, tool = 'lasso', selected = new Uint8Array(n), path = null, shape = null, adding = false, note = '';
  var px = new Float32Array(n), py = new Float32Array(n);

  function place() {  // embedding units [0,1] (y up) -> canvas pixels
    var xy = D.spaces[space].xy;
    for (var i = 0; i < n; i++) { px[i] = M + xy[2 * i] * (W - 2 * M); py[i] = H - M - xy[2 * i + 1] * (H - 2 * M); }
  }
  function toPixel(u, v) { return [M + u * (W - 2 * M), H - M - v * (H - 2 * M)]; }

  function draw() {
    g.clearRect(0, 0, W, H);
    var any = selected.some(function (s) { return s; }), r = n > 3000 ? 1.6 : (n > 300 ? 2.6 : 4);
    for (var pass = 0; pass < 2; pass++) {  // selected points last, on top
      for (var i = 0; i < n; i++) {
        if ((selected[i] === 1) !== (pass === 1)) continue;
        g.globalAlpha = any && !selected[i] ? 0.25 : 1;
        g.fillStyle = D.colors[D.cls[i]] || '#bbb';
        g.beginPath(); g.arc(px[i], py[i], r, 0, 6.2832); g.fill();
        if (selected[i]) { g.strokeStyle = '#000'; g.lineWidth = 0.8; g.stroke(); }
      }
    }
    g.globalAlpha = 1;
    outline(path, '#000');
    outline(shape, '#999');  // the last lasso or box, so the selection can be read against it
  }

  function outline(poly, colour) {
    if (!poly || poly.length < 2) return;
    g.strokeStyle = colour; g.setLineDash([4, 3]); g.beginPath(); g.moveTo(poly[0][0], poly[0][1]);
    poly.forEach(function (p) { g.lineTo(p[0], p[1]); }); g.closePath(); g.stroke(); g.setLineDash([]);
  }

  function legend() {
    var box = document.querySelector('#explorer .legend'), html = '<b>cluster</b>';
    Object.keys(D.colors).forEach(function (c) {
      html += '<div data-c="' + c + '" title="click: select this cluster (Shift: add)">' +
              '<span class="sw" style="background:' + D.colors[c] + '"></span> ' + c +
              ' (n=' + D.sizes[c] + ')</div>';
    });
    box.innerHTML = html;
    box.querySelectorAll('div[data-c]').forEach(function (el) {
      el.addEventListener('click', function (ev) { selectCluster(+el.dataset.c, ev.shiftKey); });
    });
  }

  function selectCluster(c, add) {  // every shown point of cluster c
    if (!add) selected.fill(0);
    for (var i = 0; i < n; i++) if (D.cls[i] === c) selected[i] = 1;
    note = (add && note ? note + ' + ' : '') + 'cluster ' + c; shape = null; draw(); report();
  }

  function local(ev) {  // event -> canvas pixels, whatever CSS does to the canvas's size
    var rc = cv.getBoundingClientRect();
    return [(ev.clientX - rc.left) * W / rc.width, (ev.clientY - rc.top) * H / rc.height];
  }

  function inside(poly, x, y) {  // even-odd ray casting
    var c = false;
    for (var i = 0, j = poly.length - 1; i < poly.length; j = i++) {
      var a = poly[i], b = poly[j];
      if ((a[1] > y) !== (b[1] > y) && x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0]) c = !c;
    }
    return c;
  }

  function finish(add) {
    var poly = path;
    if (tool === 'box' && path.length > 1) {
      var a = path[0], b = path[path.length - 1];
      poly = [[a[0], a[1]], [b[0], a[1]], [b[0], b[1]], [a[0], b[1]]];
    }
    if (!add) selected.fill(0);  // a new selection, unless Shift was held
    if (poly.length > 2) for (var i = 0; i < n; i++) if (inside(poly, px[i], py[i])) selected[i] = 1;
    note = tool + ' on ' + D.spaces[space].label;
    shape = poly.length > 2 ? poly : null; path = null; draw(); report();
  }

  function selectionText() {
    var lines = [D.title, '# clusters: ' + D.clusters, '', D.columns.join('\t')], k = 0;
    var order = [];
    for (var i = 0; i < n; i++) if (selected[i]) order.push(i);
    order.sort(function (a, b) { return D.rows[a] - D.rows[b]; });
    order.forEach(function (i) { lines.push([D.rows[i], D.names[i], D.ids[i], D.cls[i]].join('\t')); k++; });
    lines[2] = '# ' + (note || 'selection') + ': ' + k + ' of ' + n + ' points shown (N = ' + D.total + ')';
    return {text: lines.join('\n') + '\n', count: k};
  }

  function report() {
    var s = selectionText();
    document.getElementById('explorer-count').textContent = s.count ?
      s.count + ' selected (' + note + ')' : 'nothing selected';
    document.getElementById('explorer-selection').textContent = s.count ? s.text : '';
    return s;
  }

  function nearest(x, y) {
    var best = -1, d = 64;
    for (var i = 0; i < n; i++) {
      var e = (px[i] - x) * (px[i] - x) + (py[i] - y) * (py[i] - y);
      if (e < d) { d = e; best = i; }
    }
    return best;
  }

  function hover(ev) {
    var p = local(ev), i = nearest(p[0], p[1]);
    if (i < 0) { tip.style.display = 'none'; return; }
    var img = D.thumbs[i] ? '<img alt="central slices" src="' + D.thumbs[i] + '">' :
                             '<i>no picture (not among the ' + D.max_thumbnails + ' with one)</i>';
    var name = D.names[i].split('/').pop();
    tip.innerHTML = img + 'xy | xz | yz<br>cluster <b>' + D.cls[i] + '</b>, posterior ' +
      D.post[i].toFixed(3) + '<br>row ' + D.rows[i] + (D.ids[i] ? ', item ' + D.ids[i] : '') +
      '<br>' + name.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 14) + 'px';
    tip.style.display = 'block';
  }

  cv.addEventListener('pointerdown', function (ev) {
    try { cv.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic events */ }
    path = [local(ev)]; adding = ev.shiftKey; tip.style.display = 'none';
  });
  cv.addEventListener('pointermove', function (ev) {
    if (!path) { hover(ev); return; }
    var p = local(ev);
    if (tool === 'box') path = [path[0], p]; else path.push(p);
    draw();
  });
  cv.addEventListener('pointerup', function (ev) { if (path) { path.push(local(ev)); finish(adding || ev.shiftKey); } });
  cv.addEventListener('pointerleave', function () { tip.style.display = 'none'; });
  document.querySelectorAll('input[name=explorer-space]').forEach(function (r) {
    r.addEventListener('change', function () { space = +r.value; shape = null; place(); draw(); });
  });
  document.querySelectorAll('input[name=explorer-tool]').forEach(function (r) {
    r.addEventListener('change', function () { tool = r.value; });
  });
  document.getElementById('explorer-clear').addEventListener('click', function () {
    selected.fill(0); note = ''; shape = null; draw(); report();
  });
  document.getElementById('explorer-download').addEventListener('click', function () {
    var s = selectionText();
    if (!s.count) { alert('Select some points first (drag a lasso on the embedding).'); return; }
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([s.text], {type: 'text/tab-separated-values'}));
    a.download = 'disca-selection.tsv'; document.body.appendChild(a); a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  });

  function selftest(spec) {  // real events: a lasso or box (embedding units), a hover, a legend click
    var opts = {};
    spec.split('&').forEach(function (kv) { var p = kv.split('='); opts[p[0]] = p.slice(1).join('='); });
    if (opts.space) {
      var k = D.spaces.findIndex(function (s) { return s.key === opts.space; });
      var radio = document.querySelectorAll('input[name=explorer-space]')[k];
      radio.checked = true; radio.dispatchEvent(new Event('change'));
    }
    var out = document.getElementById('explorer-selftest'), h = /^hover:(\d+)$/.exec(opts.selftest);
    if (h) {  // the tooltip of point h[1]
      var rh = cv.getBoundingClientRect(), i = +h[1];
      cv.dispatchEvent(new PointerEvent('pointermove', {bubbles: true, pointerId: 1,
        clientX: rh.left + px[i] * rh.width / W, clientY: rh.top + py[i] * rh.height / H}));
      out.textContent = tip.style.display + '|' + tip.innerHTML; return;
    }
    var lg = /^legend:(\d+)$/.exec(opts.selftest);
    if (lg) {  // a real click on the legend entry
      document.querySelector('#explorer .legend div[data-c="' + lg[1] + '"]').dispatchEvent(
        new MouseEvent('click', {bubbles: true}));
      out.textContent = report().text; return;
    }
    var m = /^(lasso|box):(.*)$/.exec(opts.selftest || '');
    var t = document.querySelector('input[name=explorer-tool][value=' + m[1] + ']');
    t.checked = true; t.dispatchEvent(new Event('change'));
    var pts = m[2].split(';').map(function (s) { var v = s.split(','); return toPixel(+v[0], +v[1]); });
    var rc = cv.getBoundingClientRect();
    pts.forEach(function (p, i) {
      var type = i === 0 ? 'pointerdown' : (i === pts.length - 1 ? 'pointerup' : 'pointermove');
      cv.dispatchEvent(new PointerEvent(type, {bubbles: true, pointerId: 1, isPrimary: true, buttons: 1,
        clientX: rc.left + p[0] * rc.width / W, clientY: rc.top + p[1] * rc.height / H}));
    });
    out.textContent = report().text;
  }

  place(); legend(); draw(); report();
  if (location.hash.indexOf('#selftest=') === 0) {
    try { selftest(decodeURIComponent(location.hash.slice(1))); }
    catch (e) { document.getElementById('explorer-selftest').textContent = 'selftest error: ' + e; }
  }
})();
"""

"""Self-contained HTML: every PNG is embedded as base64, so index.html alone opens
offline (the PNGs and MRCs also stay in the folder as files)."""
import base64
import html
import os

from ..io.atomic import atomic_path

STYLE = """
body{font-family:sans-serif;max-width:1250px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
th{background:#f2f2f2}.sw{display:inline-block;width:14px;height:14px;border:1px solid #333;vertical-align:middle}
figure{margin:.8em 0}figcaption{font-size:.9em;color:#444;max-width:1000px}img{max-width:100%}
.warn{color:#a00}.help{font-size:.92em;color:#333;background:#f7f7f2;padding:.4em .8em;border-left:3px solid #bb9}
code{background:#eee;padding:0 3px}
.slider input[type=range]{width:420px;vertical-align:middle}.slider .label{font-weight:bold}
.slider button{margin:1px;font-size:.8em}.slider button.on{background:#335;color:#fff}
"""


def esc(text):
    return html.escape(str(text))


def hex_color(rgb):
    return "#" + "".join(f"{int(round(255 * v)):02x}" for v in rgb)


def swatch(rgb):
    return f'<span class="sw" style="background:{hex_color(rgb)}"></span>'


def image(path, caption, alt=""):
    """<figure> with the PNG inlined; a missing file becomes a visible warning."""
    if not path or not os.path.isfile(path):
        return f'<p class="warn">missing picture: {esc(path)}</p>'
    with open(path, "rb") as fh:
        data = base64.b64encode(fh.read()).decode("ascii")
    return (f'<figure><img alt="{esc(alt or os.path.basename(path))}" src="data:image/png;base64,{data}">'
            f"<figcaption>{caption} <small>(file: <code>{esc(os.path.basename(path))}</code>)</small>"
            "</figcaption></figure>")


def _data_uri(path):
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


def image_slider(frames, caption, name, start=None):
    """Pictures browsed with a slider and a row of buttons (one shown at a time; a few lines
    of inline JavaScript, so the page stays self-contained). frames: [(label, png path)]."""
    frames = [(label, p) for label, p in frames if p and os.path.isfile(p)]
    if not frames:
        return '<p class="warn">no pictures to browse</p>'
    start = start if start is not None and 0 <= start < len(frames) else len(frames) - 1
    imgs = "".join(
        f'<img class="frame" data-i="{i}" alt="{esc(label)}" src="{_data_uri(p)}"'
        f'{"" if i == start else " hidden"}>' for i, (label, p) in enumerate(frames))
    buttons = "".join(f'<button type="button" data-i="{i}">{esc(label)}</button>'
                      for i, (label, _) in enumerate(frames))
    files = ", ".join(os.path.basename(p) for _, p in frames[:2]) + (", ..." if len(frames) > 2 else "")
    return (f'<figure class="slider" id="{esc(name)}"><div class="controls">'
            f'<input type="range" min="0" max="{len(frames) - 1}" value="{start}" '
            f'aria-label="{esc(name)}"> <span class="label">{esc(frames[start][0])}</span></div>'
            f'<div class="buttons">{buttons}</div>{imgs}'
            f"<figcaption>{caption} <small>(files: <code>{esc(files)}</code>)</small></figcaption>"
            "</figure>")


SLIDER_JS = """
document.querySelectorAll('figure.slider').forEach(function (fig) {
  var range = fig.querySelector('input[type=range]'), label = fig.querySelector('.label');
  var imgs = fig.querySelectorAll('img.frame'), buttons = fig.querySelectorAll('button');
  function show(i) {
    imgs.forEach(function (im) { im.hidden = (im.dataset.i != i); });
    buttons.forEach(function (b) { b.classList.toggle('on', b.dataset.i == i); });
    range.value = i; label.textContent = imgs[i].alt;
  }
  range.addEventListener('input', function () { show(+range.value); });
  buttons.forEach(function (b) { b.addEventListener('click', function () { show(+b.dataset.i); }); });
  show(+range.value);
});
"""


def table(header, rows, raw_cols=()):
    """HTML table; cells in ``raw_cols`` (indices) are inserted without escaping."""
    out = ["<table>" + ("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else "")]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{v if i in raw_cols else esc(v)}</td>"
                                    for i, v in enumerate(row)) + "</tr>")
    return "\n".join(out + ["</table>"])


def help_box(text):
    return f'<div class="help">{text}</div>'


def write_page(path, title, sections):
    """``sections``: list of (heading or None, html body)."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>"]
    toc = [f'<li><a href="#s{i}">{esc(h)}</a></li>' for i, (h, _) in enumerate(sections) if h]
    parts.append("<ul>" + "".join(toc) + "</ul>")
    for i, (heading, body) in enumerate(sections):
        if heading:
            parts.append(f'<h2 id="s{i}">{esc(heading)}</h2>')
        parts.append(body)
    parts.append(f"<script>{SLIDER_JS}</script></body></html>")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path

"""Look at a rendered HTML report in headless Chromium: page height and width (a page
wider than the window scrolls sideways), tables wider than their container, and, for
every table cell, whether its column is at least as wide as the cell's longest word.

A small script is added before ``</body>`` of a copy of the page; it measures
each word of each cell in the cell's own font (an off-screen probe) against the
cell's content width and writes the findings as JSON into a ``<pre>``, which
``--dump-dom`` hands back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sim.report.chromium import run_chromium

__all__ = ["measure_layout"]

_SCRIPT = r"""
<script>
(function () {
  var out = {height: document.documentElement.scrollHeight, width: document.documentElement.clientWidth,
             cells: 0, narrow: []};
  var probe = document.createElement('span');
  probe.style.position = 'absolute'; probe.style.visibility = 'hidden'; probe.style.whiteSpace = 'nowrap';
  document.body.appendChild(probe);
  document.querySelectorAll('table').forEach(function (table, ti) {
    Array.prototype.forEach.call(table.rows, function (row, ri) {
      Array.prototype.forEach.call(row.cells, function (cell, ci) {
        var words = [];
        (cell.innerText || '').split(/\s+/).forEach(function (w) {
          // a URL may break after each '/', so its pieces are its words
          (w.indexOf('://') > 0 ? w.split(/(?<=\/)/) : [w]).forEach(function (p) { if (p.length) { words.push(p); } });
        });
        if (!words.length) { return; }
        out.cells += 1;
        var cs = getComputedStyle(cell);
        // the 'font' shorthand reads empty when a longhand (tabular-nums) has no shorthand form
        ['fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'fontStretch', 'fontVariantNumeric',
         'letterSpacing'].forEach(function (k) { probe.style[k] = cs[k]; });
        var inner = cell.getBoundingClientRect().width - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)
                    - parseFloat(cs.borderLeftWidth) - parseFloat(cs.borderRightWidth);
        var widest = 0, word = '';
        words.forEach(function (w) {
          probe.textContent = w;
          var px = probe.getBoundingClientRect().width;
          if (px > widest) { widest = px; word = w; }
        });
        if (widest > inner + 0.5) {
          out.narrow.push({table: ti, row: ri, col: ci, word: word, word_px: Math.round(widest * 10) / 10,
                           cell_px: Math.round(inner * 10) / 10});
        }
      });
    });
  });
  probe.remove();
  out.scroll_width = document.documentElement.scrollWidth;
  out.wide_tables = [];
  document.querySelectorAll('table').forEach(function (table, ti) {
    var w = table.getBoundingClientRect().width, room = table.parentElement.getBoundingClientRect().width;
    if (w > room + 0.5) { out.wide_tables.push({table: ti, cls: table.className, px: Math.round(w), room_px: Math.round(room)}); }
  });
  out.why_px = Array.prototype.map.call(document.querySelectorAll('td.why'), function (td) {
    return Math.round(td.getBoundingClientRect().width);
  });
  var pre = document.createElement('pre');
  pre.id = 'fleetcast-layout'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>
"""


def measure_layout(html: Path, tmp: Path, width_px: int = 1280) -> dict:
    """``{"height", "width", "scroll_width", "cells", "narrow": [{table, row, col, word, word_px,
    cell_px}], "wide_tables": [{table, cls, px, room_px}] (wider than their container),
    "why_px": [width of each reason cell]}``
    of ``html`` laid out ``width_px`` wide. Raises if Chromium fails."""
    text = Path(html).read_text(encoding="utf-8")
    probe = Path(tmp) / f"layout-{width_px}.html"
    probe.write_text(text.replace("</body>", _SCRIPT + "</body>", 1), encoding="utf-8")
    proc = run_chromium(probe, "--dump-dom", f"--window-size={width_px},1000")
    found = re.search(r'<pre id="fleetcast-layout">(.*?)</pre>', proc.stdout.decode("utf-8", "replace"), re.S)
    if not found:
        raise AssertionError("the layout script wrote nothing: Chromium did not run it")
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))

"""The report's cluster table with verdicts, the FSC plot and the pairs the merge test nearly
joined (report/verdict_table.py), on a fake cluster folder (no decoder)."""
import json
import os
import re
from html.parser import HTMLParser

from test_report import build_fake_run


class _Tables(HTMLParser):
    """Rows (lists of cell texts) of every <table>, in page order."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _row(c, verdict, res, null, reason, fsc):
    return {"cluster": c, "size": 10, "share": 0.33, "verdict": verdict, "reason": reason,
            "resolution_A": res, "nyquist_limited": False, "fsc": fsc, "reliability": 0.8,
            "null_ratio": null, "signal_fraction": 0.2, "flatness": 0.1, "mean_score": 0.3,
            "mean_null_score": 0.15, "measured": 10}


def test_cluster_table_shows_verdicts_sorted_and_the_nearly_joined_pair(tmp_path):
    from disca_engine.report import write_report
    out, _ = build_fake_run(str(tmp_path))
    path = os.path.join(out, "report.json")
    with open(path) as fh:
        info = json.load(fh)
    info["clusters"] = [
        _row(2, "structure", 36.0, 2.5, "FSC 0.143 at 36 Å; members match the average 2.50x "
             "better than noise", [0.99, 0.9, 0.6, 0.3, 0.1, 0.0]),
        _row(3, "structure", 52.0, 1.9, "FSC 0.143 at 52 Å", [0.95, 0.7, 0.2, 0.05, 0.0, 0.0]),
        _row(1, "junk-like", None, 1.02, "members match the average 1.02x better than noise",
             [0.1, 0.0, 0.05, 0.0, 0.0, 0.0])]
    info["near_pairs"] = [{"pair": [2, 3], "agreement": 0.71, "z": 6.3, "held_out_ratio": 0.93}]
    with open(path, "w") as fh:
        json.dump(info, fh)
    index = write_report(out, decoder=False, max_members=2, progress=False)
    page = open(index).read()
    parser = _Tables()
    parser.feed(page)
    table = next(t for t in parser.tables if t and t[0][:3] == ["cluster", "colour", "verdict"])
    assert [r[0] for r in table[1:]] == ["2", "3", "1"]
    assert [r[2] for r in table[1:]] == ["structure", "structure", "junk-like"]
    assert table[1][3] == "36.0 Å" and table[3][3] == "none"
    assert "1.02x better than noise" in table[3][-1]
    assert os.path.isfile(os.path.join(out, "report", "fsc.png"))
    assert "Clusters the merge test nearly joined" in page
    assert re.search(r"Clusters 2 and 3: agreement 0\.71, held-out z 6\.3", page)
    pair = next(t for t in parser.tables if t and t[0] == ["cluster", "colour", "verdict",
                                                           "resolution", "size", "null ratio"])
    assert [r[0] for r in pair[1:]] == ["2", "3"]
    # cluster montages follow the table's order
    heads = re.findall(r'<h3 id="cluster(\d+)"', page)
    assert heads == ["2", "3", "1"]

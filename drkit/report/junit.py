"""junit.xml: one testcase per step plus one per target, for CI dashboards of rehearsals."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET


def to_junit(m: dict[str, Any]) -> str:
    suite = ET.Element("testsuite", name=f"{m['runbook']['id']} {m['env']}",
                       timestamp=m["started_at"])
    failures = 0
    cases = 0
    for s in m["steps"]:
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=m["runbook"]["id"], name=s["id"],
                             time=str(s.get("duration_s") or 0))
        if s["status"] in ("failed", "interrupted"):
            failures += 1
            fail = ET.SubElement(case, "failure", message=(s.get("error") or s["status"])[:500])
            fail.text = "\n".join(s.get("tail") or [])
        elif s["status"] == "skipped":
            ET.SubElement(case, "skipped")
    if m["refused_by_preflight"]:  # a refused rehearsal is a failure, not a skipped run
        cases += 1
        failures += 1
        case = ET.SubElement(suite, "testcase", classname=m["runbook"]["id"], name="preflight")
        fail = ET.SubElement(case, "failure", message=m["outcome"])
        fail.text = "\n".join(m["preflight_findings"])
    for key, label in (("rto", "RTO"), ("rpo", "RPO")):
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=m["runbook"]["id"],
                             name=f"target-{key}")
        achieved = m["achieved"][f"{key}_s"]
        target = m["targets"][f"{key}_s"]
        if m["met"][key] is False:
            failures += 1
            ET.SubElement(case, "failure",
                          message=f"{label} achieved {achieved:.1f}s > target {target:.0f}s")
        elif m["met"][key] is None:
            ET.SubElement(case, "skipped", message=f"{label} not measured in this run")
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, "unicode") + "\n"

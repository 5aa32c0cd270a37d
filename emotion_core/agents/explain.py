"""The chain of a rewrite as an indented tree (``rewrite --explain``, the node's transcript view)."""

from __future__ import annotations


def _subject_line(subject: dict) -> str:
    slots = [f"{slot} {subject[slot]}" for slot in ("where", "setting", "scale", "time", "sky", "people")
             if subject.get(slot) not in (None, "unknown")]
    return f"subject: {subject.get('thing') or subject.get('subject')} ({', '.join(slots)})"


def explain(transcript: dict) -> str:
    """Every agent's appraisal -> concepts -> elements -> phrases, its votes with reasons, and what was kept."""
    phrases = {p["id"]: p["phrase"] for agent in transcript["chain"] for p in agent["proposals"]}
    lines = [f"{transcript['prompt'][:80]} -> {transcript['emotion']}", "  " + _subject_line(transcript["subject"])]
    for agent in transcript["chain"]:
        lines.append(f"  {agent['agent']} ({agent['backend']})")
        note = agent["appraisal"].get("note")
        if note:
            lines.append(f"    appraisal: {note}")
        for proposal in agent["proposals"]:
            aspect = f"{proposal['aspect']}: " if proposal.get("aspect") else ""
            lines.append(f"    concept {aspect}{proposal['concept']}")
            lines.append(f"      element [{proposal['family']}] {proposal['element']}")
            lines.append(f"        phrase {proposal['id']}: {proposal['phrase']}")
        round2 = agent["round2"]
        lines.append(f"    round 2 ({round2['backend']})")
        for vote in round2["votes"]:
            lines.append(f"      votes for {vote['for']} \"{phrases.get(vote['for'], '?')}\": {vote['reason']}")
        for rejected in round2["rejected"]:
            lines.append(f"      rejects {rejected['id']}: {rejected['reason']}")
    lines.append("  kept")
    for concept in transcript["concepts"]:
        lines.append(f"    {concept['from']} [{concept['family']}] {concept['phrase']}")
    lines.append(f"  rewrite: {transcript['rewrite']}")
    lines.append(f"  negative: {transcript['negative']}")
    for warning in transcript["warnings"]:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)

"""Our own drawing of a Feishu (Lark) chat message carrying one interactive card, for the README.

`feishu_card_html(body)` takes the JSON body the Feishu sink posts (`{"msg_type":
"interactive", "card": {...}}`) and returns one self-contained HTML page (inline style, no
script, no external asset): a bot's avatar and name, then the card with its header coloured by
`card.header.template` and each element drawn by its tag. It renders the lark_md our sink
emits (bold, links, inline code, code fences, "- " list lines, line breaks); everything else is
escaped text. This is not Feishu's renderer, only a look-alike: an element, text tag or header
template it does not know raises `ValueError`, so a change to our card fails the picture's test
instead of silently vanishing from the picture.
"""

from __future__ import annotations

import html
import re
from itertools import groupby
from typing import Any

TEMPLATES = {
    "blue": "#3370ff", "wathet": "#1a9fe0", "turquoise": "#0ca596", "green": "#2ea121",
    "yellow": "#d6a300", "orange": "#f07b1d", "red": "#e5443e", "carmine": "#d33c6a",
    "violet": "#9b44d9", "purple": "#6b46d9", "indigo": "#4954e6", "grey": "#646a73",
}  # fmt: skip
"""Header colours by `template`, close to Feishu's own."""

STYLE = """
* { box-sizing: border-box; } p, pre, ul { margin: 0 0 6px; } a { color: #245bdb; }
body { margin: 0; background: #f2f3f5; color: #1f2329; font: 14px/1.6 "DejaVu Sans", sans-serif; }
#alert { display: flex; gap: 10px; padding: 16px; } .side { flex: 1; min-width: 0; }
.avatar { flex: none; width: 36px; height: 36px; border-radius: 50%; background: #3370ff;
  color: #fff; font-weight: 600; font-size: 16px; line-height: 36px; text-align: center; }
.who { font-size: 12px; color: #646a73; margin-bottom: 4px; }
.who span { margin-left: 6px; padding: 0 4px; border-radius: 3px; background: #e1eaff;
  color: #245bdb; font-size: 11px; }
.card { background: #fff; border: 1px solid #dee0e3; border-radius: 8px; overflow: hidden; }
.card header { padding: 10px 14px; color: #fff; font-size: 15px; font-weight: 600; }
.elements { padding: 10px 14px 12px; } .elements > * { margin-bottom: 8px; }
.elements > :last-child, .note p { margin-bottom: 0; } p { overflow-wrap: anywhere; }
pre { padding: 8px 10px; background: #f5f6f7; border-radius: 4px; white-space: pre-wrap;
  font: 12px/1.5 "DejaVu Sans Mono", monospace; overflow-wrap: anywhere; }
code { padding: 0 3px; background: #f5f6f7; border-radius: 3px; font-family: monospace; }
ul { padding-left: 20px; } a { text-decoration: none; } .note { color: #8f959e; font-size: 12px; }
hr { border: 0; border-top: 1px solid #dee0e3; } .fields .long { grid-column: 1 / -1; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 4px 16px; }
.actions { display: flex; gap: 8px; } .actions a { padding: 4px 12px; border-radius: 6px;
  border: 1px solid #d0d3d6; color: #1f2329; } .actions .danger { color: #f54a45; }
.actions .primary { background: #3370ff; border-color: #3370ff; color: #fff; }
"""

BUTTONS = ("default", "primary", "danger")
_FENCE = re.compile(r"(?:^|\n)```[^\n]*\n(.*?)\n```(?=\n|$)", re.DOTALL)
_INLINE = re.compile(r"\*\*(.+?)\*\*|\[([^\]\n]+)\]\(([^)\s]+)\)|`([^`\n]+)`")


def _inline(text: str) -> str:
    """One line of lark_md: bold, links and inline code drawn; the rest escaped."""
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[at : m.start()]))
        bold, label, url, code = m.groups()
        if bold is not None:
            out.append(f"<b>{html.escape(bold)}</b>")
        elif label is not None:
            out.append(f'<a href="{html.escape(url)}">{html.escape(label)}</a>')
        else:
            out.append(f"<code>{html.escape(code)}</code>")
        at = m.end()
    return "".join([*out, html.escape(text[at:])])


def lark_md(text: str) -> str:
    """lark_md as HTML blocks: code fences, then paragraphs (split at empty lines) of lines and
    "- " list items."""
    out = []
    for n, part in enumerate(_FENCE.split(text)):
        if n % 2:
            out.append(f"<pre>{html.escape(part)}</pre>")
            continue
        for paragraph in re.split(r"\n[ \t]*\n", part.strip("\n")):
            for listed, group in groupby(paragraph.split("\n"), lambda x: x.startswith("- ")):
                lines = list(group)
                if listed:
                    out.append("<ul>" + "".join(f"<li>{_inline(x[2:])}</li>" for x in lines))
                    out.append("</ul>")
                elif any(line.strip() for line in lines):
                    out.append("<p>" + "<br>".join(_inline(x) for x in lines) + "</p>")
    return "".join(out)


def _text(obj: dict[str, Any]) -> str:
    """A text object: `plain_text` escaped, `lark_md` rendered."""
    if obj["tag"] == "plain_text":
        return "<p>" + html.escape(obj["content"]).replace("\n", "<br>") + "</p>"
    if obj["tag"] == "lark_md":
        return lark_md(obj["content"])
    raise ValueError(f"unknown text tag {obj['tag']!r}")


def _button(action: dict[str, Any]) -> str:
    """One button of an `action` element: its label linked to its `url`."""
    if action["tag"] != "button" or action.get("type", "default") not in BUTTONS:
        raise ValueError(f"unknown action {action['tag']!r} of type {action.get('type')!r}")
    label, url = html.escape(action["text"]["content"]), html.escape(action["url"])
    return f'<a class="{action.get("type", "default")}" href="{url}">{label}</a>'


def _element(element: dict[str, Any]) -> str:
    """One card element by its tag."""
    tag = element["tag"]
    if tag == "markdown":
        return f"<div>{lark_md(element['content'])}</div>"
    if tag == "hr":
        return "<hr>"
    if tag == "note":
        return '<div class="note">' + "".join(_text(e) for e in element["elements"]) + "</div>"
    if tag == "div":
        parts = [_text(element["text"])] if "text" in element else []
        if "fields" in element:
            cells = (
                f'<div class="{"short" if f.get("is_short") else "long"}">{_text(f["text"])}</div>'
                for f in element["fields"]
            )
            parts.append('<div class="fields">' + "".join(cells) + "</div>")
        return "<div>" + "".join(parts) + "</div>"
    if tag == "action":
        return '<div class="actions">' + "".join(_button(a) for a in element["actions"]) + "</div>"
    raise ValueError(f"unknown card element tag {tag!r}")


def feishu_card_html(body: dict[str, Any], *, bot: str = "DLI monitor") -> str:
    """The page drawing `body` (an `interactive` message) as posted by the bot named `bot`."""
    if body.get("msg_type") != "interactive":
        raise ValueError(f"not an interactive card: msg_type {body.get('msg_type')!r}")
    card = body["card"]
    template = card["header"].get("template", "blue")
    if template not in TEMPLATES:
        raise ValueError(f"unknown header template {template!r}")
    title = html.escape(card["header"]["title"]["content"])
    elements = "".join(_element(e) for e in card["elements"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f'<div id="alert"><div class="avatar" aria-hidden="true">{html.escape(bot[:1])}</div>'
        f'<div class="side"><div class="who">{html.escape(bot)}<span>Bot</span></div>'
        f'<div class="card"><header style="background: {TEMPLATES[template]}">{title}</header>'
        f'<div class="elements">{elements}</div></div></div></div></body></html>\n'
    )

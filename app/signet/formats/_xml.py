"""Parsing untrusted XML: no DTD, no entities, no network -- the one way XML is read here.

A document with a DOCTYPE (an internal subset, entity declarations or an external DTD) is
refused rather than parsed around: with entity resolution off, lxml keeps ``&x;`` as a node
that signxml then refuses or drops, and a DTD that is ignored silently changes what a signer
thinks was signed. Refused, the client learns why; nothing is ever fetched or expanded, so no
file's or URL's content can reach an answer.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from signet.formats.errors import FormatError


class XmlRefused(FormatError):
    """The XML is not well-formed, or carries a DOCTYPE or entity references."""


def safe_parser(*, huge_tree: bool = False) -> etree.XMLParser:
    """An lxml parser that resolves no entity, loads no DTD and never opens a URL.

    ``huge_tree`` lifts libxml2's size limits (text nodes over 10 MB, depth over 256), which a
    verifier needs for an enveloping signature over a large document; without a DTD there is
    nothing to expand, so the input's size bounds the memory."""
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        dtd_validation=False,
        huge_tree=huge_tree,
        remove_blank_text=False,
    )


def parse_xml(raw: bytes, *, huge_tree: bool = False) -> Any:
    """The root element of ``raw``; XmlRefused if it is not well-formed or has a DOCTYPE."""
    try:
        root = etree.fromstring(raw, parser=safe_parser(huge_tree=huge_tree))
    except etree.XMLSyntaxError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}") from exc
    refuse_doctype(root)
    return root


def refuse_doctype(root: Any) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        where = f" (it names {docinfo.system_url!r})" if docinfo.system_url else ""
        raise XmlRefused(
            f"XML with a DOCTYPE is refused{where}: DTDs and entity declarations "
            "are not read; send the document without them"
        )
    for _entity in root.iter(etree.Entity):
        raise XmlRefused(
            "XML with entity references is refused: send the document with its text spelled out"
        )

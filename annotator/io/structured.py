"""XML and YAML from dataset files, bounded before and while parsing.

XML (CVAT, VOC) is parsed by defusedxml (ADR 0015) with DTDs forbidden: a DOCTYPE is refused by the
parser itself whatever the file's encoding (a byte search for `<!DOCTYPE` misses UTF-16), so no
entity can expand and no external file is fetched. The file must be a regular file of at most
`max_bytes`, and elements may nest at most `MAX_XML_DEPTH` deep (checked on the tree, without
recursion; the file-size bound already bounds the tree's memory: about 6.5x the file, measured).

YAML (YOLO's data.yaml) is read with PyYAML's safe loader (plain data, no Python objects) from a
regular file of at most `MAX_YAML_BYTES`; nesting deeper than the parser's recursion allows is one
line, not a traceback.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

from annotator.errors import AnnotatorError, DatasetFormatError
from annotator.io.files import read_regular, show_path

__all__ = ["MAX_XML_DEPTH", "MAX_YAML_BYTES", "load_yaml", "parse_xml", "read_file"]

MAX_XML_DEPTH = 64
"""Deepest element nesting accepted (CVAT's own files nest 8 deep)."""
MAX_YAML_BYTES = 16 * 2**20
"""Largest data.yaml read (a list of 100k class names is ~2 MB)."""

ErrorType = type[AnnotatorError]


def read_file(
    path: str | os.PathLike, max_bytes: int, error: ErrorType = DatasetFormatError
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, or one line naming the file (a named
    pipe, a folder, a file too large or unreadable)."""
    try:
        return read_regular(path, max_bytes)
    except ValueError:  # an embedded NUL byte in the name
        raise error(f"{show_path(path)}: the file name contains a NUL byte") from None
    except OSError as problem:
        raise error(f"{show_path(path)}: cannot read ({problem.strerror or problem})") from None


def parse_xml(
    path: str | os.PathLike, max_bytes: int, error: ErrorType = DatasetFormatError
) -> ET.Element:
    """The root element of an XML file; DTDs, entities and external references forbidden, at most
    `max_bytes` and `MAX_XML_DEPTH` levels deep."""
    import defusedxml
    import defusedxml.ElementTree as DET

    where = show_path(path)
    data = read_file(path, max_bytes, error)
    try:
        root = DET.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise error(f"{where}: a DOCTYPE or ENTITY is not allowed (no DTD)") from None
    except defusedxml.DefusedXmlException as problem:
        raise error(f"{where}: not allowed in the XML ({type(problem).__name__})") from None
    except ET.ParseError as problem:
        raise error(f"{where}: not well-formed XML ({problem})") from None
    stack = [(root, 1)]  # the depth bound, checked without recursion
    while stack:
        element, depth = stack.pop()
        if depth > MAX_XML_DEPTH:
            raise error(f"{where}: XML nested deeper than {MAX_XML_DEPTH} elements")
        stack.extend((child, depth + 1) for child in element)
    return root


def load_yaml(
    path: str | os.PathLike, max_bytes: int = MAX_YAML_BYTES, error: ErrorType = DatasetFormatError
) -> Any:
    """The plain data of a UTF-8 YAML file (safe loader), bounded in size and nesting."""
    import yaml

    where = show_path(path)
    data = read_file(path, max_bytes, error)
    try:
        return yaml.safe_load(data.decode("utf-8-sig"))
    except UnicodeDecodeError as problem:
        raise error(f"{where}: not UTF-8 text (byte {problem.start})") from None
    except RecursionError:
        raise error(f"{where}: YAML nested too deeply") from None
    except yaml.YAMLError as problem:
        first = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise error(f"{where}: not readable YAML ({first})") from None

#!/usr/bin/env python3
"""Write the structure-only extract of Sage's v3.1 swagger used by sage-sandbox.

Usage (from the workspace root):

    python3 schemas/sage/extract.py ../shared/sage/swagger-v3.1.json [OUTPUT]

OUTPUT defaults to sage-v3.1-structure.json next to this script.

The extract keeps only what a request validator needs (property names, types,
formats, enums, required lists and length/range limits) so that the project
does not carry Sage's documentation prose. Python standard library only.
"""

import json
import os
import sys

# Request definitions the sandbox validates, with the response definition whose
# length limits apply to the same fields. Sage's request definitions carry no
# maxLength at all; the limits it documents (contact reference 10, invoice
# reference 25, address lines 50, ...) live on the response definitions.
REQUEST_DEFINITIONS = [
    ("postContacts", "Contact"),
    ("putContacts", "Contact"),
    ("postProducts", "Product"),
    ("putProducts", "Product"),
    ("postServices", "Service"),
    ("putServices", "Service"),
    ("postSalesInvoices", "SalesInvoice"),
    ("postSalesCreditNotes", "SalesCreditNote"),
    ("postContactPayments", "ContactPayment"),
    ("postContactAllocations", "ContactAllocation"),
    ("postStockItems", "StockItem"),
    ("putStockItems", "StockItem"),
    ("postStockMovements", "StockMovement"),
]

# Schema keywords copied verbatim. Anything else on a schema node (descriptions,
# examples, vendor extensions) is dropped.
SCALAR_KEYWORDS = (
    "type",
    "format",
    "enum",
    "required",
    "maxLength",
    "minLength",
    "maximum",
    "minimum",
)
LIMIT_KEYWORDS = ("maxLength", "minLength", "maximum", "minimum")

IDEMPOTENCY_PROPERTY = {"type": "string", "minLength": 32, "maxLength": 32}


def resolve(definitions, node):
    """Follow a local $ref to its definition; return None for other nodes."""
    if not isinstance(node, dict):
        return None
    ref = node.get("$ref")
    if ref is None and isinstance(node.get("items"), dict):
        ref = node["items"].get("$ref")
    if not ref or not ref.startswith("#/definitions/"):
        return None
    return definitions.get(ref[len("#/definitions/"):])


def structure(definitions, node, response_node):
    """Copy the structural keywords of a request schema node.

    `response_node` is the matching response definition (or None); its length
    and range limits are merged in where the request node has none.
    """
    out = {}
    for key in SCALAR_KEYWORDS:
        if key in node:
            out[key] = node[key]
    if isinstance(response_node, dict):
        for key in LIMIT_KEYWORDS:
            if key not in out and key in response_node:
                out[key] = response_node[key]
    if "properties" in node:
        response_props = {}
        if isinstance(response_node, dict):
            response_props = response_node.get("properties", {})
        props = {}
        # Property names are data, not prose: a property called "description"
        # (products, invoice lines) is kept like any other.
        for name, child in node["properties"].items():
            response_child = response_props.get(name)
            nested = resolve(definitions, response_child)
            if child.get("type") in ("object", "array") and nested is not None:
                response_child = nested
            props[name] = structure(definitions, child, response_child)
        out["properties"] = props
    if "items" in node:
        response_items = None
        if isinstance(response_node, dict):
            if "properties" in response_node and node["items"].get("type") == "object":
                # The array's response counterpart was already resolved to the
                # item definition by the caller.
                response_items = response_node
            elif isinstance(response_node.get("items"), dict):
                response_items = response_node["items"]
        out["items"] = structure(definitions, node["items"], response_items)
    return out


def extract(swagger):
    definitions = swagger["definitions"]
    result = {
        "swagger_info_version": swagger.get("info", {}).get("version"),
        "base_path": swagger.get("basePath"),
        "definitions": {},
    }
    for request_name, response_name in REQUEST_DEFINITIONS:
        request = definitions[request_name]
        response = definitions.get(response_name)
        (root_name, root_schema), = request["properties"].items()
        root = structure(definitions, root_schema, response)
        # Sage accepts idempotency_id inside every root object although its
        # swagger does not list it.
        root.setdefault("properties", {})["idempotency_id"] = dict(IDEMPOTENCY_PROPERTY)
        entry = {"type": "object", "properties": {root_name: root}}
        if "required" in request:
            entry["required"] = request["required"]
        result["definitions"][request_name] = entry
    return result


def main(argv):
    if len(argv) < 2 or len(argv) > 3:
        sys.stderr.write("usage: extract.py SWAGGER_JSON [OUTPUT_JSON]\n")
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        swagger = json.load(fh)
    output = argv[2] if len(argv) == 3 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "sage-v3.1-structure.json"
    )
    text = json.dumps(extract(swagger), indent=2, ensure_ascii=False) + "\n"
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""sqlmatic's MCP server driven by a third-party client: the official Python MCP SDK (`mcp` on
PyPI), over stdio (`sqlmatic mcp`, as Claude Desktop starts it) and over Streamable HTTP
(`/mcp` on a running server, with a bearer token). Any mismatch fails.

Usage: python .ci/mcp_interop.py BIN HTTP_URL TOKEN   (run by .ci/mcp with the venv's python)
"""

import asyncio
import logging
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


class Complaints(logging.Handler):
    """The SDK's own warnings (e.g. "Session termination failed: 202"): each is a mismatch it
    tolerated, so each fails the check."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = []

    def emit(self, record):
        self.seen.append(f"{record.name}: {record.getMessage()}")


COMPLAINTS = Complaints()
logging.getLogger("mcp").addHandler(COMPLAINTS)


def check(condition, what):
    if not condition:
        raise SystemExit(f"mcp interop: {what}")


async def exercise(session: ClientSession, transport: str) -> None:
    init = session.initialize_result if hasattr(session, "initialize_result") else None
    if init is None:
        init = await session.initialize()
    check(init.server_info.name == "sqlmatic", f"{transport}: server name {init.server_info.name}")
    tools = {t.name: t for t in (await session.list_tools()).tools}
    for name in ["list_databases", "list_tables", "get_schema", "get_metadata", "execute_query", "find_values", "ask"]:
        check(name in tools, f"{transport}: tool {name} missing ({sorted(tools)})")
    query = tools["execute_query"]
    check(query.annotations and query.annotations.read_only_hint is True, f"{transport}: readOnlyHint")
    check(query.output_schema is not None, f"{transport}: outputSchema")
    result = await session.call_tool("execute_query", {"sql": "SELECT count(*) AS n FROM customers"})
    check(not result.is_error, f"{transport}: execute_query failed: {result}")
    check(result.structured_content["rows"] == [[1200]], f"{transport}: rows {result.structured_content}")
    check("1200" in result.content[0].text, f"{transport}: text content {result.content}")
    refused = await session.call_tool("execute_query", {"sql": "DELETE FROM customers"})
    check(refused.is_error and refused.structured_content["code"] == "read_only", f"{transport}: write not refused: {refused}")
    resources = (await session.list_resources()).resources
    check([str(r.uri) for r in resources] == ["sqlmatic://demo/schema"], f"{transport}: resources {resources}")
    schema = await session.read_resource("sqlmatic://demo/schema")
    check("order_items" in schema.contents[0].text, f"{transport}: schema resource")
    print(f"mcp interop over {transport}: ok (protocol {getattr(session, 'protocol_version', '?')})")


async def main() -> None:
    binary, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
    env = {k: v for k, v in os.environ.items() if k.startswith("SQLMATIC_") or k in ("PATH", "HOME")}
    env["SQLMATIC_TOKEN"] = token
    params = StdioServerParameters(command=binary, args=["mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await exercise(session, "streamable HTTP")
    check(not COMPLAINTS.seen, f"the SDK complained: {COMPLAINTS.seen}")


asyncio.run(main())

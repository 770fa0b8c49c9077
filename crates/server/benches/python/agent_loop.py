"""The most direct alternative a developer would write: a hand-written tool-calling loop with
the openai SDK and sqlite3, run against the same scripted model and the same turn shape as
`cargo xtask bench-agent` (list_tables -> get_schema -> execute_query -> answer).

Usage: agent_loop.py BASE_URL DB_PATH TURNS
Prints one JSON line: {"cpu_ms_per_turn", "tools_cpu_ms_per_turn" (the three tool calls alone:
the SQLite floor of the turn), "wall_ms_median", "openai" (the SDK's version)}.
"""

import json
import sqlite3
import statistics
import sys
import time

import openai

TOOLS = [
    {"type": "function", "function": {"name": "list_tables", "description": "List tables.",
     "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}},
    {"type": "function", "function": {"name": "get_schema", "description": "Columns of tables.",
     "parameters": {"type": "object", "properties": {"tables": {"type": "array", "items": {"type": "string"}}},
                    "required": ["tables"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "execute_query", "description": "Run one read-only SELECT.",
     "parameters": {"type": "object", "properties": {"sql": {"type": "string"}},
                    "required": ["sql"], "additionalProperties": False}}},
]


def list_tables(db, _args):
    # names only: counting every table's rows would make this side slower than it needs to be
    return {"tables": [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite_%'")]}


def get_schema(db, args):
    return {t: [{"name": c[1], "type": c[2], "notnull": bool(c[3]), "pk": bool(c[5])}
                for c in db.execute("SELECT * FROM pragma_table_info(?)", (t,))]
            for t in args.get("tables", [])}


def execute_query(db, args):
    cur = db.execute(args["sql"])
    rows = cur.fetchmany(200)
    return {"columns": [d[0] for d in cur.description], "rows": rows}


HANDLERS = {"list_tables": list_tables, "get_schema": get_schema, "execute_query": execute_query}


def turn(client, db, question):
    messages = [
        {"role": "system", "content": "Answer questions about the SQLite database with the tools."},
        {"role": "user", "content": question},
    ]
    for _ in range(10):
        reply = client.chat.completions.create(model="scripted", messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            try:
                result = HANDLERS[call.function.name](db, json.loads(call.function.arguments or "{}"))
                content = json.dumps(result, default=str)
            except Exception as e:  # the model gets the error, as in any agent loop
                content = json.dumps({"error": str(e)})
            messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
    raise RuntimeError("no answer within 10 steps")


def main():
    base_url, db_path, turns = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    for i in range(20):
        turn(client, db, f"warm-up {i}")
    walls = []
    cpu_start = time.process_time()
    for i in range(turns):
        started = time.perf_counter()
        answer = turn(client, db, f"Which countries order the most? ({i})")
        walls.append((time.perf_counter() - started) * 1000)
        assert answer, "empty answer"
    cpu_ms = (time.process_time() - cpu_start) * 1000 / turns
    # the floor both sides pay: the turn's three tool calls alone, without any model call
    sql = ("SELECT c.country, count(*) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id "
           "GROUP BY c.country ORDER BY orders DESC LIMIT 5")
    tools_start = time.process_time()
    for _ in range(turns):
        list_tables(db, {})
        get_schema(db, {"tables": ["customers", "orders"]})
        execute_query(db, {"sql": sql})
    tools_ms = (time.process_time() - tools_start) * 1000 / turns
    print(json.dumps({"cpu_ms_per_turn": cpu_ms, "tools_cpu_ms_per_turn": tools_ms,
                      "wall_ms_median": statistics.median(walls), "openai": openai.__version__}))


if __name__ == "__main__":
    main()

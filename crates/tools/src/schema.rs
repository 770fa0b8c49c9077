//! Tool argument schemas as LLM APIs accept them. Tools declare one canonical JSON Schema in a
//! small subset every provider takes (`type` as one string, `properties`, `required`, `items`,
//! `enum`, `anyOf`, `description`; no `additionalProperties`, `const`, `$ref`, `$schema` or
//! numeric/string constraints, which Gemini rejects), and providers render it:
//! - [`openai_strict`] for OpenAI's `strict: true` function calling: every object closed
//!   (`additionalProperties: false`) and listing all its properties in `required`, optional
//!   values made nullable;
//! - the canonical schema as is for Anthropic's `input_schema`, Gemini's OpenAI-compatible
//!   endpoint and other OpenAI-compatible servers.
//!
//! The `check_*` functions state each provider's published rules as code, so a test can hold
//! every registered tool to them.

use serde_json::{Map, Value, json};

/// Keywords the canonical subset may use.
const CANONICAL_KEYWORDS: &[&str] =
    &["type", "properties", "required", "items", "enum", "anyOf", "description"];

/// Keywords OpenAI's strict mode accepts (structured outputs' supported subset, without the
/// type-specific constraints some models still reject).
const OPENAI_STRICT_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "anyOf",
    "description",
    "additionalProperties",
];

const TYPES: &[&str] = &["object", "array", "string", "number", "integer", "boolean", "null"];

/// The schema for OpenAI's strict function calling: every object gets
/// `additionalProperties: false` and all its properties in `required`; a property that was not
/// required becomes nullable (`anyOf [its schema, {"type": "null"}]`), so the model sends
/// `null` where it has nothing to say, and the tool reads `null` as absent.
pub fn openai_strict(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else { return schema.clone() };
    let mut out = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "properties" | "required" => {}
            "items" => {
                out.insert(k.clone(), openai_strict(v));
            }
            "anyOf" => {
                let branches = v.as_array().map(|b| b.iter().map(openai_strict).collect());
                out.insert(k.clone(), Value::Array(branches.unwrap_or_default()));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if obj.get("type").and_then(Value::as_str) == Some("object") {
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut props = Map::new();
        let mut names = Vec::new();
        if let Some(p) = obj.get("properties").and_then(Value::as_object) {
            for (name, prop) in p {
                let strict = openai_strict(prop);
                let prop =
                    if required.contains(&name.as_str()) { strict } else { nullable(strict) };
                props.insert(name.clone(), prop);
                names.push(Value::String(name.clone()));
            }
        }
        out.insert("properties".into(), Value::Object(props));
        out.insert("required".into(), Value::Array(names));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// `schema` or null, keeping its description at the top where models read it.
fn nullable(mut schema: Value) -> Value {
    if let Some(Value::Array(branches)) = schema.get_mut("anyOf") {
        if !branches.iter().any(|b| b["type"] == "null") {
            branches.push(json!({"type": "null"}));
        }
        return schema;
    }
    let description = schema.as_object_mut().and_then(|o| o.remove("description"));
    let mut out = json!({"anyOf": [schema, {"type": "null"}]});
    if let Some(d) = description {
        out["description"] = d;
    }
    out
}

/// Where a schema breaks a rule: `path: what`.
pub type Violations = Vec<String>;

fn walk(schema: &Value, path: &str, rule: &mut dyn FnMut(&Map<String, Value>, &str)) {
    let Some(obj) = schema.as_object() else { return };
    rule(obj, path);
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            walk(p, &format!("{path}.properties.{name}"), rule);
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, &format!("{path}.items"), rule);
    }
    if let Some(branches) = obj.get("anyOf").and_then(Value::as_array) {
        for (i, b) in branches.iter().enumerate() {
            walk(b, &format!("{path}.anyOf[{i}]"), rule);
        }
    }
}

fn common_rules(obj: &Map<String, Value>, path: &str, allowed: &[&str], out: &mut Violations) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            out.push(format!("{path}: keyword `{k}` is not supported"));
        }
    }
    match obj.get("type") {
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {
            if t == "array" && !obj.contains_key("items") {
                out.push(format!("{path}: array schema missing items"));
            }
        }
        Some(other) => out.push(format!("{path}: `type` must be one type name, not {other}")),
        None if obj.contains_key("anyOf") => {}
        None => out.push(format!("{path}: no `type` (and no `anyOf`)")),
    }
    if let Some(req) = obj.get("required") {
        let props = obj.get("properties").and_then(Value::as_object);
        for r in req.as_array().into_iter().flatten() {
            if !r.as_str().is_some_and(|r| props.is_some_and(|p| p.contains_key(r))) {
                out.push(format!("{path}: required `{r}` is not a property"));
            }
        }
    }
}

fn root_rules(schema: &Value, out: &mut Violations) {
    if schema["type"] != "object" {
        out.push("root: must be `{\"type\": \"object\"}`".into());
    }
}

/// The canonical subset (accepted by Gemini's OpenAI-compatible endpoint, Anthropic and plain
/// OpenAI-compatible servers): see the module docs.
pub fn check_canonical(schema: &Value) -> Violations {
    let mut out = Vec::new();
    root_rules(schema, &mut out);
    walk(schema, "root", &mut |obj, path| common_rules(obj, path, CANONICAL_KEYWORDS, &mut out));
    out
}

/// OpenAI strict function calling: objects closed and fully required, arrays with `items`, root
/// an object, only the supported keywords.
pub fn check_openai_strict(schema: &Value) -> Violations {
    let mut out = Vec::new();
    root_rules(schema, &mut out);
    walk(schema, "root", &mut |obj, path| {
        common_rules(obj, path, OPENAI_STRICT_KEYWORDS, &mut out);
        if obj.get("type").and_then(Value::as_str) == Some("object") {
            if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
                out.push(format!("{path}: object without `additionalProperties: false`"));
            }
            let props: Vec<&String> = obj
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().collect())
                .unwrap_or_default();
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for p in props {
                if !required.contains(&p.as_str()) {
                    out.push(format!("{path}: property `{p}` is not in `required`"));
                }
            }
        }
    });
    out
}

/// Anthropic's `input_schema`: a JSON Schema whose root is an object.
pub fn check_anthropic(schema: &Value) -> Violations {
    let mut out = Vec::new();
    root_rules(schema, &mut out);
    walk(schema, "root", &mut |obj, path| {
        if let Some(Value::String(t)) = obj.get("type")
            && t == "array"
            && !obj.contains_key("items")
        {
            out.push(format!("{path}: array schema missing items"));
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_closes_objects_and_makes_optional_values_nullable() {
        let canonical = json!({
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "SQL"},
                "tables": {"type": "array", "items": {"type": "string"}, "description": "which"},
                "pair": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
            },
            "required": ["sql"]
        });
        let strict = openai_strict(&canonical);
        assert_eq!(check_openai_strict(&strict), Vec::<String>::new());
        assert_eq!(strict["required"], json!(["pair", "sql", "tables"]));
        assert_eq!(strict["properties"]["sql"], json!({"type": "string", "description": "SQL"}));
        assert_eq!(
            strict["properties"]["tables"],
            json!({"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "description": "which"})
        );
        assert_eq!(strict["properties"]["pair"]["anyOf"][0]["additionalProperties"], false);
    }

    #[test]
    fn the_rules_catch_what_the_providers_reject() {
        let loose = json!({"type": "object", "properties": {"params": {"anyOf": [{"type": "array"}, {"type": "object"}]}}});
        let v = check_openai_strict(&loose);
        assert!(v.iter().any(|m| m.contains("array schema missing items")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("additionalProperties")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("`params` is not in `required`")), "{v:?}");
        let gemini = check_canonical(&json!({"type": "object", "additionalProperties": false,
            "properties": {"n": {"type": ["integer", "null"], "minimum": 0}}}));
        assert!(gemini.iter().any(|m| m.contains("`additionalProperties`")), "{gemini:?}");
        assert!(gemini.iter().any(|m| m.contains("`minimum`")), "{gemini:?}");
        assert!(gemini.iter().any(|m| m.contains("one type name")), "{gemini:?}");
        assert!(!check_anthropic(&json!({"type": "string"})).is_empty());
    }
}

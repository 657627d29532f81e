//! Tests derived from the live schema, not from a hand-picked list: every `Int` argument
//! and input field of every query and mutation is called at its edges, and the host must
//! answer each call with data or a typed error — never `INTERNAL`, never a dropped
//! connection. A resolver added tomorrow is walked without anyone remembering to add it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::harness::{ALPHA, TestServer, code};

/// The values every `Int` is tried with: zero, negative, the ends of GraphQL's 32-bit
/// `Int`, and beyond it (fields backed by `u32`/`u64` accept larger numbers).
const EDGES: [i64; 8] = [
    0,
    -1,
    2_147_483_647,
    -2_147_483_648,
    4_294_967_295,
    4_294_967_296,
    10_000_000_000_000,
    i64::MAX,
];

const INTROSPECTION: &str = r#"
query {
  __schema {
    queryType { name }
    mutationType { name }
    types {
      kind name
      fields { name args { name defaultValue type { ...T } } type { ...T } }
      inputFields { name defaultValue type { ...T } }
      enumValues { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
"#;

/// The schema as introspected: types by name.
pub struct Schema {
    types: BTreeMap<String, Value>,
    one_of: BTreeSet<String>,
    pub query: String,
    pub mutation: String,
}

impl Schema {
    pub async fn load(s: &TestServer) -> Schema {
        let r = s.ok(ALPHA, INTROSPECTION, json!({})).await;
        let schema = &r["__schema"];
        let types = schema["types"]
            .as_array()
            .expect("types")
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
            .collect();
        // @oneOf is not in this introspection: read it from the checked-in SDL
        let sdl = include_str!("../../schema/graphql/schema.graphql");
        let one_of = sdl
            .lines()
            .filter_map(|l| l.strip_prefix("input ")?.strip_suffix(" @oneOf {"))
            .map(str::to_owned)
            .collect();
        Schema {
            types,
            one_of,
            query: schema["queryType"]["name"].as_str().unwrap().to_owned(),
            mutation: schema["mutationType"]["name"].as_str().unwrap().to_owned(),
        }
    }

    /// The fields of a root type, with their arguments.
    pub fn fields(&self, root: &str) -> Vec<Value> {
        self.types[root]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn named<'a>(&'a self, t: &'a Value) -> &'a Value {
        let mut t = t;
        while !t["ofType"].is_null() {
            t = &t["ofType"];
        }
        &self.types[t["name"].as_str().unwrap()]
    }

    /// `[Int!]!`-style text of a type reference.
    pub fn type_text(t: &Value) -> String {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => format!("{}!", Self::type_text(&t["ofType"])),
            "LIST" => format!("[{}]", Self::type_text(&t["ofType"])),
            _ => t["name"].as_str().unwrap().to_owned(),
        }
    }

    /// A selection that is valid for the field's type (`{ __typename }` for objects).
    pub fn selection(&self, t: &Value) -> &'static str {
        match self.named(t)["kind"].as_str().unwrap() {
            "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
            _ => "",
        }
    }

    /// A value of the type that passes type checking: required input fields only.
    pub fn sample(&self, t: &Value, ctx: &Samples, depth: usize) -> Value {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => self.sample(&t["ofType"], ctx, depth),
            "LIST" => json!([self.sample(&t["ofType"], ctx, depth)]),
            _ => {
                let named = self.named(t);
                let name = named["name"].as_str().unwrap();
                match named["kind"].as_str().unwrap() {
                    "SCALAR" => ctx.scalar(name),
                    "ENUM" => named["enumValues"][0]["name"].clone(),
                    "INPUT_OBJECT" => self.sample_input(named, ctx, depth),
                    other => panic!("no sample for {other} {name}"),
                }
            }
        }
    }

    fn sample_input(&self, named: &Value, ctx: &Samples, depth: usize) -> Value {
        let name = named["name"].as_str().unwrap();
        let fields = named["inputFields"].as_array().unwrap();
        let mut out = Map::new();
        if self.one_of.contains(name) {
            let f = &fields[0];
            out.insert(
                f["name"].as_str().unwrap().to_owned(),
                self.sample(&f["type"], ctx, depth + 1),
            );
            return Value::Object(out);
        }
        for f in fields {
            if f["type"]["kind"] == "NON_NULL" && f["defaultValue"].is_null() && depth < 6 {
                out.insert(
                    f["name"].as_str().unwrap().to_owned(),
                    self.sample(&f["type"], ctx, depth + 1),
                );
            }
        }
        Value::Object(out)
    }

    /// Every path from a value of type `t` to an `Int` inside it (through input objects and
    /// lists), as the names of the input fields on the way.
    pub fn int_paths(&self, t: &Value, depth: usize) -> Vec<Vec<String>> {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" | "LIST" => self.int_paths(&t["ofType"], depth),
            _ => {
                let named = self.named(t);
                match (
                    named["kind"].as_str().unwrap(),
                    named["name"].as_str().unwrap(),
                ) {
                    ("SCALAR", "Int") => vec![vec![]],
                    ("INPUT_OBJECT", _) if depth < 6 => {
                        let mut out = Vec::new();
                        for f in named["inputFields"].as_array().unwrap() {
                            for mut rest in self.int_paths(&f["type"], depth + 1) {
                                rest.insert(0, f["name"].as_str().unwrap().to_owned());
                                out.push(rest);
                            }
                        }
                        out
                    }
                    _ => vec![],
                }
            }
        }
    }

    /// A sample of type `t` with the `Int` at `path` set to `value`.
    pub fn with_int(&self, t: &Value, path: &[String], value: i64, ctx: &Samples) -> Value {
        match t["kind"].as_str().unwrap() {
            "NON_NULL" => self.with_int(&t["ofType"], path, value, ctx),
            "LIST" => json!([self.with_int(&t["ofType"], path, value, ctx)]),
            _ if path.is_empty() => json!(value),
            _ => {
                let named = self.named(t);
                let name = named["name"].as_str().unwrap();
                let mut base = if self.one_of.contains(name) {
                    Map::new()
                } else {
                    self.sample_input(named, ctx, 0)
                        .as_object()
                        .cloned()
                        .unwrap_or_default()
                };
                let field = named["inputFields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == path[0].as_str())
                    .expect("path field");
                base.insert(
                    path[0].clone(),
                    self.with_int(&field["type"], &path[1..], value, ctx),
                );
                Value::Object(base)
            }
        }
    }
}

/// Values for scalars: real ids where a test made them.
pub struct Samples {
    pub id: String,
}

impl Samples {
    fn scalar(&self, name: &str) -> Value {
        match name {
            "Int" => json!(1),
            "Float" => json!(1.0),
            "String" => json!("x"),
            "Boolean" => json!(false),
            "ID" => json!(self.id),
            "DateTime" => json!("2026-01-01T00:00:00Z"),
            "Decimal" => json!("1"),
            "JSON" => json!({}),
            other => panic!("no sample for scalar {other}: teach Samples::scalar"),
        }
    }
}

/// One call: `root.field` with every required argument sampled and `int` set at `path`
/// of argument `arg`.
fn call(
    schema: &Schema,
    field: &Value,
    arg: &str,
    path: &[String],
    value: i64,
    ctx: &Samples,
    mutation: bool,
) -> (String, Value) {
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    let mut variables = Map::new();
    for (i, a) in field["args"].as_array().unwrap().iter().enumerate() {
        let name = a["name"].as_str().unwrap();
        let v = if name == arg {
            schema.with_int(&a["type"], path, value, ctx)
        } else if a["type"]["kind"] == "NON_NULL" && a["defaultValue"].is_null() {
            schema.sample(&a["type"], ctx, 0)
        } else {
            continue;
        };
        declared.push(format!("$a{i}: {}", Schema::type_text(&a["type"])));
        passed.push(format!("{name}: $a{i}"));
        variables.insert(format!("a{i}"), v);
    }
    let args = if passed.is_empty() {
        String::new()
    } else {
        format!("({})", passed.join(", "))
    };
    let vars = if declared.is_empty() {
        String::new()
    } else {
        format!("({})", declared.join(", "))
    };
    let query = format!(
        "{}{vars} {{ {}{args}{} }}",
        if mutation { "mutation" } else { "query" },
        field["name"].as_str().unwrap(),
        schema.selection(&field["type"]),
    );
    (query, Value::Object(variables))
}

/// POSTs as the admin; `None` when the connection drops or the answer is not JSON.
pub async fn send(s: &TestServer, request: Value) -> Option<Value> {
    let addr = s.addr;
    let headers = format!("Content-Type: application/json\r\nAuthorization: Bearer {ALPHA}\r\n");
    let body = request.to_string();
    let (status, text) = tokio::spawn(async move {
        crate::harness::http(addr, "POST", "/graphql", &headers, &body).await
    })
    .await
    .ok()?;
    let json: Value = serde_json::from_str(&text).ok()?;
    (status != 0).then_some(json)
}

async fn every_int_at_its_edges_gets_data_or_a_typed_error(s: &TestServer) {
    let schema = Schema::load(s).await;
    let id = s
        .create_customer(
            ALPHA,
            json!({ "displayName": "边界", "sourceChannel": "WEB" }),
        )
        .await;
    let ctx = Samples { id };
    let mut failures = Vec::new();
    let mut calls = 0;
    for (root, mutation) in [
        (schema.query.clone(), false),
        (schema.mutation.clone(), true),
    ] {
        for field in schema.fields(&root) {
            for a in field["args"].as_array().unwrap() {
                for path in schema.int_paths(&a["type"], 0) {
                    for value in EDGES {
                        let arg = a["name"].as_str().unwrap();
                        let (query, variables) =
                            call(&schema, &field, arg, &path, value, &ctx, mutation);
                        let answer =
                            send(s, json!({ "query": query, "variables": variables })).await;
                        calls += 1;
                        let at = format!(
                            "{}({arg}{}{} = {value})",
                            field["name"].as_str().unwrap(),
                            if path.is_empty() { "" } else { "." },
                            path.join(".")
                        );
                        let Some(body) = answer else {
                            failures.push(format!("{at}: no answer (connection dropped)"));
                            continue;
                        };
                        for e in body["errors"].as_array().into_iter().flatten() {
                            if code(e) == "INTERNAL" || code(e).is_empty() {
                                failures.push(format!("{at}: {} {}", code(e), e["message"]));
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("schema walk: {calls} calls, {} failures", failures.len());
    assert!(calls > 100, "the walk made only {calls} calls");
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

crate::on_both_backends!(every_int_at_its_edges_gets_data_or_a_typed_error);

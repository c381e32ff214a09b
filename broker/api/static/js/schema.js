// A small JSON Schema check for answers, run before sending. It covers the common
// keywords; the broker checks the full schema again and has the last word.

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (Number.isInteger(v)) return "integer";
  return typeof v;
}

function matchesType(v, t) {
  const actual = typeOf(v);
  return actual === t || (t === "number" && actual === "integer");
}

function equal(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function resolveRef(root, ref) {
  if (!ref.startsWith("#")) return null;
  let node = root;
  for (const raw of ref.slice(1).split("/").filter(Boolean)) {
    const part = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    node = node?.[part];
  }
  return node ?? null;
}

const at = (path) => (path.length ? "/" + path.join("/") : "/");

// The first problem found, as {path, message}, or null when the answer passes.
export function check(schema, value) {
  return visit(schema, value, [], schema, 0);
}

function visit(schema, v, path, root, depth) {
  if (schema === true || schema === undefined || schema === null || depth > 50) return null;
  if (schema === false) return { path: at(path), message: "no value is allowed here" };
  const fail = (message) => ({ path: at(path), message });
  if (typeof schema.$ref === "string") {
    const target = resolveRef(root, schema.$ref);
    const problem = target && visit(target, v, path, root, depth + 1);
    if (problem) return problem;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => matchesType(v, t))) {
      return fail(`expected ${types.join(" or ")}, got ${typeOf(v)}`);
    }
  }
  if (schema.enum && !schema.enum.some((e) => equal(e, v))) {
    return fail(`must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(", ")}`);
  }
  if ("const" in schema && !equal(schema.const, v)) {
    return fail(`must be ${JSON.stringify(schema.const)}`);
  }
  if (typeof v === "string") {
    const length = [...v].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      return fail(`must be at least ${schema.minLength} characters`);
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      return fail(`must be at most ${schema.maxLength} characters`);
    }
    if (schema.pattern !== undefined) {
      try {
        if (!new RegExp(schema.pattern, "u").test(v)) {
          return fail(`must match the pattern ${schema.pattern}`);
        }
      } catch {
        // a pattern JavaScript cannot read is left to the broker
      }
    }
  }
  if (typeof v === "number") {
    if (schema.minimum !== undefined && v < schema.minimum) return fail(`must be ≥ ${schema.minimum}`);
    if (schema.maximum !== undefined && v > schema.maximum) return fail(`must be ≤ ${schema.maximum}`);
    if (typeof schema.exclusiveMinimum === "number" && v <= schema.exclusiveMinimum) {
      return fail(`must be > ${schema.exclusiveMinimum}`);
    }
    if (typeof schema.exclusiveMaximum === "number" && v >= schema.exclusiveMaximum) {
      return fail(`must be < ${schema.exclusiveMaximum}`);
    }
  }
  if (Array.isArray(v)) {
    if (schema.minItems !== undefined && v.length < schema.minItems) {
      return fail(`needs at least ${schema.minItems} items`);
    }
    if (schema.maxItems !== undefined && v.length > schema.maxItems) {
      return fail(`takes at most ${schema.maxItems} items`);
    }
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
    for (let i = 0; i < v.length; i++) {
      const itemSchema = i < prefix.length ? prefix[i] : schema.items;
      const problem = visit(itemSchema, v[i], [...path, i], root, depth + 1);
      if (problem) return problem;
    }
  }
  if (typeOf(v) === "object") {
    for (const name of schema.required ?? []) {
      if (!(name in v)) return fail(`"${name}" is required`);
    }
    const props = schema.properties ?? {};
    for (const [name, item] of Object.entries(v)) {
      if (name in props) {
        const problem = visit(props[name], item, [...path, name], root, depth + 1);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return { path: at([...path, name]), message: `"${name}" is not an expected field` };
      } else if (typeof schema.additionalProperties === "object") {
        const problem = visit(schema.additionalProperties, item, [...path, name], root, depth + 1);
        if (problem) return problem;
      }
    }
  }
  for (const sub of schema.allOf ?? []) {
    const problem = visit(sub, v, path, root, depth + 1);
    if (problem) return problem;
  }
  if (schema.anyOf && !schema.anyOf.some((sub) => !visit(sub, v, path, root, depth + 1))) {
    return fail("matches none of the allowed forms");
  }
  if (schema.oneOf) {
    const passing = schema.oneOf.filter((sub) => !visit(sub, v, path, root, depth + 1)).length;
    if (passing !== 1) return fail("must match exactly one of the allowed forms");
  }
  if (schema.not && !visit(schema.not, v, path, root, depth + 1)) return fail("is not allowed");
  return null;
}

// An answer to start from: the schema's default or example, else an empty value of its type.
export function skeleton(schema) {
  if (!schema || typeof schema !== "object") return null;
  if ("default" in schema) return schema.default;
  if (Array.isArray(schema.examples) && schema.examples.length) return schema.examples[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === "object" || schema.properties) {
    const out = {};
    for (const name of schema.required ?? []) out[name] = skeleton(schema.properties?.[name]);
    return out;
  }
  return { array: [], string: "", number: 0, integer: 0, boolean: false }[type] ?? null;
}

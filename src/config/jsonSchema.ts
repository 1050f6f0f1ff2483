import { z } from 'zod';
import { configSchema } from './schema';

/**
 * The JSON Schema of tokengate.yaml, for editors (yaml-language-server and the like: completion,
 * hover text, errors as you type). It is the input side of the same zod definition the loader
 * uses, so it cannot drift from it; checks that need more than one value or the environment
 * (references between grants and upstreams, secrets) are made only by `tokengate check-config`.
 */

/**
 * Whether a key may be left out of the YAML. Zod's emitter looks through one preprocess but not a
 * preprocess followed by a transform (how oidc is read), and would list such a key as optional.
 */
function optionalInInput(schema: z.core.$ZodType): boolean {
  const def = (schema as z.core.$ZodTypes)._zod.def;
  switch (def.type) {
    case 'optional':
    case 'default':
    case 'prefault':
      return true;
    case 'pipe':
      return optionalInInput(def.in._zod.traits.has('$ZodTransform') ? def.out : def.in);
    default:
      return false;
  }
}

function requiredKeys({ zodSchema, jsonSchema }: { zodSchema: z.core.$ZodTypes; jsonSchema: z.core.JSONSchema.BaseSchema }): void {
  const def = zodSchema._zod.def;
  if (def.type !== 'object') return;
  const required = Object.keys(def.shape).filter((key) => !optionalInInput(def.shape[key]));
  if (required.length > 0) jsonSchema.required = required;
  else delete jsonSchema.required;
}

export function configJsonSchema(): Record<string, unknown> {
  // Nothing is resolved while describing the schema: the context is never read.
  const schema = configSchema({ source: '(schema)', env: {}, baseDir: '/' });
  const json = z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'throw', override: requiredKeys });
  return { $schema: json.$schema, title: 'tokengate.yaml', ...json };
}

/** The committed schema/tokengate.schema.json: exactly what `tokengate schema` prints. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/**
 * `${VAR}` is not valid as a plain scalar inside YAML flow collections (`{ password: ${X} }`
 * parses as "$" followed by a nested mapping), yet that is the natural way to write a role.
 * Before parsing, quote each `${NAME}` that stands alone as a value so both block and flow
 * styles work. A reference already in quotes, or part of a longer string, is left alone.
 */
const STANDALONE_REF = /(^|[\s:,[{])(\$\{[A-Za-z_][A-Za-z0-9_]*\})(?=[ \t]*(?:$|[,}\]]|#))/gm;

export function quoteEnvReferences(yamlText: string): string {
  return yamlText.replace(STANDALONE_REF, (_m, before: string, ref: string) => `${before}"${ref}"`);
}

import type { Command } from 'commander';
import { configJsonSchemaText } from '../config/jsonSchema';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of tokengate.yaml (for editor completion and checks)')
    .action(() => {
      process.stdout.write(configJsonSchemaText());
    });
}

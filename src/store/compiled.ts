// Statements of a fixed shape compiled once. kysely builds and compiles a query anew each time it
// runs one, which cost a REGISTER more CPU and garbage than running its statements: a statement run
// on every request is compiled once per shape here, with a marker in place of each value, and later
// runs only put the values where the markers went.
import type { CompiledQuery } from 'kysely';

interface Template {
  compiled: CompiledQuery;
  /** For each parameter of the compiled statement, the index of the value it takes; -1 for a constant of the statement's own. */
  order: number[];
  /** Whether the parameters are the values themselves, in their order: they are then passed as they are, not copied. */
  identity: boolean;
}

/** Markers no real value equals: the NUL character cannot come from SIP or configuration. */
const marker = (index: number) => `\u0000parley-value-${index}`;

export class CompiledStatements {
  private readonly templates = new Map<string, Template | null>();

  /**
   * The compiled statement `build` makes of `values`, `shape` naming what else it depends on (e.g.
   * the number of rows). A constant the statement passes as a parameter of its own (e.g. `where
   * flag = 0`) stays. A shape whose compiled form does not carry each value as one parameter (a
   * value inlined in the SQL, or used twice) is built anew every time, as kysely would. `values`
   * may become the statement's parameters as they are: not to be changed afterwards.
   */
  compile(shape: string, values: readonly unknown[], build: (values: readonly unknown[]) => { compile(): CompiledQuery }): CompiledQuery {
    let template = this.templates.get(shape);
    if (template === undefined) {
      const markers = values.map((_, i) => marker(i));
      const compiled = build(markers).compile();
      const order = compiled.parameters.map((parameter) => markers.indexOf(parameter as string));
      const eachOnce = values.every((_, i) => order.indexOf(i) !== -1 && order.indexOf(i) === order.lastIndexOf(i));
      template = eachOnce ? { compiled, order, identity: order.length === values.length && order.every((index, i) => index === i) } : null;
      this.templates.set(shape, template);
    }
    if (template === null) return build(values).compile();
    if (template.identity) return { ...template.compiled, parameters: values };
    const parameters = new Array<unknown>(template.order.length);
    for (let i = 0; i < parameters.length; i++) {
      const index = template.order[i]!;
      parameters[i] = index === -1 ? template.compiled.parameters[i] : values[index];
    }
    return { ...template.compiled, parameters };
  }
}

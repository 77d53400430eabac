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

/** A statement of a StatementGroup: its compiled form, and for each of its parameters the index of the group's value it takes. */
export interface GroupedStatement {
  compiled: CompiledQuery;
  sources: readonly number[];
}

/**
 * Statements run together whose parameters are all drawn from one list of values, each taking the
 * value at its index: a value several of them use (a REGISTER's AOR, its contact) is in the list
 * once. A SqliteWriter hands the list to its thread rather than each statement's parameters: the
 * copy between threads costs by the value.
 */
export class StatementGroup {
  constructor(
    readonly statements: readonly GroupedStatement[],
    /** How many values the group takes. */
    readonly valueCount: number,
  ) {}

  /** The group's statements with `values` as their parameters. */
  expand(values: readonly unknown[]): CompiledQuery[] {
    return this.statements.map(({ compiled, sources }) => ({ ...compiled, parameters: sources.map((source) => values[source]) }));
  }
}

/** A group's statements with their values. */
export interface GroupWrite {
  group: StatementGroup;
  values: readonly unknown[];
}

/** StatementGroups compiled once per shape. */
export class CompiledGroups {
  private readonly groups = new Map<string, StatementGroup>();

  /** The group compiled for `shape`, if one was. */
  get(shape: string): StatementGroup | undefined {
    return this.groups.get(shape);
  }

  /**
   * The group of the statements `build` makes of `values`, `shape` naming what else they depend on
   * (e.g. the number of rows): built with a marker in place of each value the first time, then
   * reused. Every parameter must be one of the values and every value a parameter: the SQL of a
   * group is fixed, a statement whose SQL depends on a value (inlined in it) cannot be one.
   */
  group(shape: string, values: readonly unknown[], build: (values: readonly unknown[]) => ReadonlyArray<{ compile(): CompiledQuery }>): StatementGroup {
    let group = this.groups.get(shape);
    if (group === undefined) {
      const markers = values.map((_, i) => marker(i));
      const statements = build(markers).map((query) => {
        const compiled = query.compile();
        return { compiled, sources: compiled.parameters.map((parameter) => markers.indexOf(parameter as string)) };
      });
      const used = new Set(statements.flatMap(({ sources }) => sources));
      if (used.has(-1) || used.size !== values.length) throw new Error(`The statements of ${shape} do not take each of their values as a parameter: they cannot be a group`);
      group = new StatementGroup(statements, values.length);
      this.groups.set(shape, group);
    }
    return group;
  }
}

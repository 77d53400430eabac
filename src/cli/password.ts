// Where `parley user add` gets a password when none is on the command line: standard input when
// it is piped, otherwise a prompt that does not echo. The prompt goes to stderr so that stdout
// stays clean for scripts.

const ENTER = new Set(['\r', '\n', '\u0004']); // Ctrl-D ends the input too
const CTRL_C = '\u0003';
const BACKSPACE = new Set(['\u007f', '\b']);

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  stream.setEncoding('utf8');
  let text = '';
  for await (const chunk of stream) text += chunk;
  return text;
}

function promptHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  return new Promise((resolve, reject) => {
    let entered: string[] = [];
    const finish = (error?: Error) => {
      input.off('data', onKeys);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(entered.join(''));
    };
    const onKeys = (keys: string) => {
      for (const key of keys) {
        if (ENTER.has(key)) return finish();
        if (key === CTRL_C) return finish(new Error('cancelled'));
        entered = BACKSPACE.has(key) ? entered.slice(0, -1) : [...entered, key];
      }
    };
    process.stderr.write(prompt);
    input.setEncoding('utf8');
    input.setRawMode(true);
    input.on('data', onKeys);
    input.resume();
  });
}

export async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    // One trailing newline belongs to `echo` or the here-document, not to the password.
    return (await readAll(process.stdin)).replace(/\r?\n$/, '');
  }
  const password = await promptHidden('Password: ');
  if ((await promptHidden('Repeat password: ')) !== password) throw new Error('the passwords differ');
  return password;
}

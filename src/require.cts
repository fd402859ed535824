// The CommonJS entry point: what `require('runtel')` loads. runtel is an ES module; Node.js 20.19 and
// later load ES modules with require(), so this hands over the very same module (one instance, one
// set of runs, whichever way it is loaded). Older Node.js cannot, and gets a message saying what to do
// instead of ERR_REQUIRE_ESM or ERR_PACKAGE_PATH_NOT_EXPORTED.

function load(): unknown {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- require(esm) is the point of this file
    return require('./index.js') as unknown;
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code === 'ERR_REQUIRE_ESM') {
      throw new Error(
        `runtel is ESM only: use import() / "type": "module" (Node.js ${process.version} cannot require() an ES module; ` +
          'Node.js 20.19 and later can, and load runtel with require() too)',
        { cause: error },
      );
    }
    throw error;
  }
}

export = load();

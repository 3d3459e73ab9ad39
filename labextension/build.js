// Build the prebuilt extension with @jupyterlab/builder against the JupyterLab that is installed
// (its staging/package.json lists the shared packages and their versions).
const { execFileSync } = require('child_process');
const path = require('path');

const python = process.env.PYTHON || 'python3';
const lab = execFileSync(python, ['-c', 'import jupyterlab, os; print(os.path.dirname(jupyterlab.__file__))'])
  .toString()
  .trim();
const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js');
execFileSync(process.execPath, [builder, '--core-path', path.join(lab, 'staging'), '.'], {
  stdio: 'inherit'
});

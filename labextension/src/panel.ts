// The "Environments and kernels" panel: what the /ozkernels page shows, inside JupyterLab.
import { Widget } from '@lumino/widgets';

import { api, ICheck, IEnvironment, IKernel } from './api';

type Refresh = () => Promise<void>;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  node.append(...children);
  return node;
}

export class EnvironmentsPanel extends Widget {
  constructor(private readonly refreshSpecs: Refresh) {
    super();
    this.addClass('ozk-Panel');
    this.id = 'ozkernels-panel';
    this.title.label = 'ozkernels';
    this.title.caption = 'ozkernels: environments and kernels';
    this.title.closable = true;
    this.node.append(
      el('h2', {}, 'Environments and kernels'),
      this._summary,
      el('div', { class: 'ozk-Toolbar' }, this._syncButton, this._reloadButton, this._message),
      this._table
    );
    this._syncButton.addEventListener('click', () => void this.sync());
    this._reloadButton.addEventListener('click', () => void this.reload());
  }

  /** Highlight (and scroll to) the row of a kernel once the data is there. */
  focusKernel(kernel: string): void {
    this._focus = kernel;
    this._applyFocus();
  }

  /** Fetch environments and kernels from the server and render them. */
  async reload(): Promise<void> {
    try {
      const [envs, kernels] = await Promise.all([api.environments(), api.kernels()]);
      this._kernels = new Map(kernels.kernels.map(k => [k.name, k]));
      for (const k of kernels.kernels) {
        if (k.last_check && k.last_check.state === 'done' && !this._checks.has(k.name)) {
          this._checks.set(k.name, k.last_check);
        }
      }
      this._render(envs.environments, envs.notes);
    } catch (error) {
      this._message.textContent = `Could not read ozkernels' environments: ${error}`;
    }
  }

  /** Run a sync on the server, then show what it did. */
  async sync(): Promise<void> {
    this._syncButton.disabled = true;
    this._syncButton.textContent = 'Syncing…';
    this._message.textContent = '';
    try {
      const result = await api.sync();
      const counts: Record<string, number> = {};
      for (const a of result.actions) {
        counts[a.action] = (counts[a.action] || 0) + 1;
      }
      const done: Record<string, string> = { add: 'added', update: 'updated', remove: 'removed' };
      const parts = Object.entries(counts).map(([k, v]) => `${v} ${done[k] || k}`);
      parts.push(`${result.unchanged} unchanged`);
      this._message.textContent = `Sync done: ${parts.join(', ')}.`;
      await this.refreshSpecs();
      await this.reload();
    } catch (error) {
      this._message.textContent = `Sync failed: ${error}`;
    } finally {
      this._syncButton.disabled = false;
      this._syncButton.textContent = 'Sync';
    }
  }

  /** Start one kernel on the server and probe it; the button shows the seconds it takes. */
  async check(kernel: string): Promise<void> {
    if (this._running.has(kernel)) {
      return;
    }
    const started = Date.now();
    this._running.set(kernel, started);
    this._updateCheck(kernel);
    const timer = window.setInterval(() => this._updateCheck(kernel), 500);
    try {
      this._checks.set(kernel, await api.check(kernel));
    } catch (error) {
      this._checks.set(kernel, { ok: false, error: String(error) });
    } finally {
      window.clearInterval(timer);
      this._running.delete(kernel);
      this._updateCheck(kernel);
    }
    await this.reload();
  }

  /** A check finished elsewhere (another tab, the events stream). */
  checkFinished(kernel: string, result: ICheck): void {
    if (!this._running.has(kernel)) {
      this._checks.set(kernel, result);
      this._updateCheck(kernel);
    }
  }

  private _render(envs: IEnvironment[], notes: string[]): void {
    const problems = envs.filter(e => e.fix || e.last_start_failure).length;
    const kernelCount = envs.reduce(
      (n, e) => n + (e.kernel ? 1 : 0) + e.variant_kernels.length,
      0
    );
    this._summary.textContent =
      `${envs.length} environments, ${kernelCount} kernels, ${problems} with a problem` +
      (notes.length ? ` - ${notes.join('; ')}` : '');
    const head = el(
      'tr',
      {},
      ...['Kind', 'Environment', 'Modules', 'Kernel', 'Status', 'Problem and fix'].map(h =>
        el('th', {}, h)
      )
    );
    const body = el('tbody');
    for (const env of envs) {
      body.append(this._row(env));
    }
    this._table.replaceChildren(el('thead', {}, head), body);
    this._applyFocus();
  }

  private _row(env: IEnvironment): HTMLTableRowElement {
    const kernels = [env.kernel, ...env.variant_kernels.map(v => v.kernel)].filter(Boolean);
    const row = el('tr', {
      class: 'ozk-Row',
      'data-name': env.name,
      'data-kernels': kernels.join(' ')
    });
    const where = el(
      'td',
      {},
      el('div', {}, env.name),
      el('div', { class: 'ozk-Path' }, env.path || env.prefix)
    );
    const kernelCell = el('td', { class: 'ozk-Kernel' });
    const names: [string, string][] = env.kernel ? [[env.kernel, env.display_name]] : [];
    names.push(...env.variant_kernels.map(v => [v.kernel, v.display_name] as [string, string]));
    for (const [name, display] of names) {
      const line = el('div', { class: 'ozk-KernelLine', 'data-kernel': name });
      line.append(el('span', { title: name }, display || name));
      if (this._kernels.get(name)?.on_disk) {
        const button = el('button', { class: 'ozk-Button ozk-CheckButton' }, 'Check');
        button.addEventListener('click', () => void this.check(name));
        line.append(' ', button, el('span', { class: 'ozk-Check' }));
      }
      kernelCell.append(line);
    }
    if (!names.length) {
      kernelCell.append('-');
    }
    const failed = env.last_start_failure;
    const status = el(
      'td',
      {},
      el('span', { class: 'ozk-Status', 'data-status': env.status }, env.status)
    );
    if (failed) {
      status.append(' ', el('span', { class: 'ozk-Status', 'data-status': 'start failed' }, 'start failed'));
    }
    const problem = el('td', { class: 'ozk-ProblemCell' });
    if (failed) {
      problem.append(
        el('div', { class: 'ozk-Problem ozk-StartFailure' },
          `Last start of ${failed.kernel} failed (${failed.when}): ${failed.message}`)
      );
    }
    if (env.detail && env.status !== 'up to date') {
      problem.append(el('div', { class: 'ozk-Problem' }, env.detail));
    }
    if (env.fix) {
      problem.append(el('div', { class: 'ozk-Fix' }, 'Fix: ', el('code', {}, env.fix)));
    }
    row.append(
      el('td', {}, env.kind),
      where,
      el('td', { class: 'ozk-Modules' }, env.modules.join(' ') || '-'),
      kernelCell,
      status,
      problem
    );
    window.setTimeout(() => kernels.forEach(k => this._updateCheck(k)));
    return row;
  }

  private _updateCheck(kernel: string): void {
    const line = this.node.querySelector(`.ozk-KernelLine[data-kernel="${CSS.escape(kernel)}"]`);
    if (!line) {
      return;
    }
    const button = line.querySelector<HTMLButtonElement>('.ozk-CheckButton');
    const label = line.querySelector<HTMLElement>('.ozk-Check');
    if (!button || !label) {
      return;
    }
    const started = this._running.get(kernel);
    const result = this._checks.get(kernel);
    label.className = 'ozk-Check';
    if (started !== undefined) {
      button.disabled = true;
      button.textContent = `Checking… ${Math.floor((Date.now() - started) / 1000)} s`;
      label.textContent = 'starting the kernel on the server';
    } else {
      button.disabled = false;
      button.textContent = 'Check';
      if (result) {
        label.classList.add(result.ok ? 'ozk-pass' : 'ozk-fail');
        label.textContent = result.ok
          ? `pass, ready in ${(result.start_seconds ?? 0).toFixed(2)} s`
          : `fail: ${result.error}`;
      } else {
        label.textContent = '';
      }
    }
  }

  private _applyFocus(): void {
    if (!this._focus) {
      return;
    }
    for (const row of Array.from(this.node.querySelectorAll('.ozk-Row'))) {
      const kernels = (row.getAttribute('data-kernels') || '').split(' ');
      const hit = kernels.includes(this._focus);
      row.classList.toggle('ozk-focus', hit);
      if (hit) {
        row.scrollIntoView({ block: 'center' });
      }
    }
  }

  private _summary = el('div', { class: 'ozk-Summary' }, 'Loading…');
  private _syncButton = el('button', { class: 'ozk-Button ozk-primary ozk-SyncButton' }, 'Sync');
  private _reloadButton = el('button', { class: 'ozk-Button' }, 'Reload');
  private _message = el('span', { class: 'ozk-Message' });
  private _table = el('table', { class: 'ozk-Table' });
  private _kernels = new Map<string, IKernel>();
  private _checks = new Map<string, ICheck>();
  private _running = new Map<string, number>();
  private _focus = '';
}

// ozkernels in JupyterLab: kernel list refreshed when the server says the specs changed, an
// "Environments and kernels" panel, and a notification when one of its kernels fails to start.
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  showDialog,
  WidgetTracker
} from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ILauncher } from '@jupyterlab/launcher';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { SCHEMA_ID } from './api';
import { LOGO_SVG } from './logo';
import { EnvironmentsPanel } from './panel';

const OPEN = 'ozkernels:open';
export const ozkernelsIcon = new LabIcon({ name: 'ozkernels:logo', svgstr: LOGO_SVG });

/** The launcher's one line, with its fix (the clause after the last '; ') set apart. */
function failureBody(message: string): Widget {
  const body = new Widget();
  body.addClass('ozk-FailureDetails');
  const cut = message.lastIndexOf('; ');
  const reason = el('p', cut > 0 ? message.slice(0, cut) : message);
  body.node.append(reason);
  if (cut > 0) {
    body.node.append(el('p', `Fix: ${message.slice(cut + 2)}`));
  }
  return body;
}

function el(tag: string, text: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: '@ozkernels/jupyterlab:plugin',
  description: 'ozkernels: kernels refreshed on change, environments panel, start failures.',
  autoStart: true,
  optional: [ICommandPalette, IMainMenu, ILauncher, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    mainMenu: IMainMenu | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null
  ) => {
    const specs = app.serviceManager.kernelspecs;
    const refreshSpecs = () => specs.refreshSpecs();
    const tracker = new WidgetTracker<MainAreaWidget<EnvironmentsPanel>>({
      namespace: 'ozkernels'
    });

    app.commands.addCommand(OPEN, {
      label: args =>
        args['isLauncher'] ? 'Environments' : 'ozkernels: Environments and kernels',
      caption: 'Every environment ozkernels finds, its kernel, status, problem and fix',
      icon: args => (args['isPalette'] ? undefined : ozkernelsIcon),
      execute: async args => {
        const kernel = typeof args['kernel'] === 'string' ? args['kernel'] : '';
        if (app.name !== 'JupyterLab') {
          // Notebook 7's shells have no dock area for a panel: its page, in a browser tab.
          window.open(URLExt.join(PageConfig.getBaseUrl(), 'ozkernels'), '_blank');
          return;
        }
        let widget = tracker.currentWidget;
        if (!widget || widget.isDisposed) {
          const content = new EnvironmentsPanel(refreshSpecs);
          widget = new MainAreaWidget({ content });
          widget.id = 'ozkernels-environments';
          widget.title.label = 'ozkernels';
          widget.title.icon = ozkernelsIcon;
          widget.title.closable = true;
          void tracker.add(widget);
        }
        if (!widget.isAttached) {
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(widget.id);
        if (kernel) {
          widget.content.focusKernel(kernel);
        }
        await widget.content.reload();
      }
    });
    palette?.addItem({ command: OPEN, category: 'Kernel' });
    mainMenu?.kernelMenu.addGroup([{ command: OPEN }], 1000);
    launcher?.add({ command: OPEN, category: 'Other', rank: 50 });
    if (restorer) {
      void restorer.restore(tracker, { command: OPEN, name: () => 'ozkernels' });
    }

    const displayName = (kernel: string) =>
      specs.specs?.kernelspecs[kernel]?.display_name || kernel;

    app.serviceManager.events.stream.connect((_, event) => {
      if (event.schema_id !== SCHEMA_ID) {
        return;
      }
      const data = event as { [key: string]: any };
      const panel = tracker.currentWidget?.content;
      switch (data['action']) {
        case 'kernelspecs-changed':
          void refreshSpecs();
          void panel?.reload();
          break;
        case 'start-failed':
          Notification.error(
            `Kernel "${displayName(data['kernel'])}" could not start: ${data['message']}`,
            {
              autoClose: false,
              actions: [
                {
                  label: 'Details',
                  caption: "The launcher's whole reason and the fix",
                  callback: async () => {
                    const result = await showDialog({
                      title: `Kernel "${displayName(data['kernel'])}" could not start`,
                      body: failureBody(String(data['message'])),
                      buttons: [
                        Dialog.cancelButton({ label: 'Close' }),
                        Dialog.okButton({ label: 'Show in ozkernels' })
                      ]
                    });
                    if (result.button.accept) {
                      await app.commands.execute(OPEN, { kernel: data['kernel'] });
                    }
                  }
                },
                {
                  label: 'Show in ozkernels',
                  caption: 'Open the environments panel on this kernel',
                  callback: () => void app.commands.execute(OPEN, { kernel: data['kernel'] })
                }
              ]
            }
          );
          void panel?.reload();
          break;
        case 'check-finished':
          panel?.checkFinished(data['kernel'], {
            ok: !!data['ok'],
            error: data['message'] || '',
            start_seconds: data['seconds']
          });
          break;
      }
    });
  }
};

export default plugin;

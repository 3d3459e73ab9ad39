// The ozkernels server extension's REST API, called with JupyterLab's server settings (token, XSRF).
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const SCHEMA_ID = 'https://events.ozkernels.org/ozkernels/v1';

export interface IStartFailure {
  kernel: string;
  message: string;
  connection_file: string;
  when: string;
}

export interface IVariant {
  kernel: string;
  variant: string;
  display_name: string;
}

export interface IEnvironment {
  kind: string;
  name: string;
  prefix: string;
  path: string;
  modules: string[];
  kernel: string;
  display_name: string;
  status: string;
  detail: string;
  fix: string;
  variant_kernels: IVariant[];
  last_start_failure: IStartFailure | null;
}

export interface IKernel {
  name: string;
  display_name: string;
  on_disk: boolean;
  status: string;
  last_check: ICheck | null;
}

export interface ICheck {
  name?: string;
  ok: boolean;
  error: string;
  start_seconds?: number | null;
  state?: string;
}

export interface ISyncResult {
  actions: { action: string; kernel: string; reason: string }[];
  unchanged: number;
  notes: string[];
}

export async function request<T>(path: string, method = 'GET'): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'ozkernels', 'api', path);
  const response = await ServerConnection.makeRequest(url, { method }, settings);
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.message || data.reason)) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return data as T;
}

export const api = {
  environments: () =>
    request<{ environments: IEnvironment[]; notes: string[] }>('environments'),
  kernels: () => request<{ kernels: IKernel[] }>('kernels'),
  sync: () => request<ISyncResult>('sync', 'POST'),
  check: (name: string) =>
    request<ICheck>(`kernels/${encodeURIComponent(name)}/check`, 'POST')
};

// Compiled by `make test` against types generated from docs/openapi.json by openapi-typescript:
// a client's view of the contract. If an operation, schema or field used here disappears or
// changes type, tsc fails.
import type { components, operations, paths } from "./api";

type PayOrder = components["schemas"]["PayOrderView"];
type ErrorBody = components["schemas"]["ErrorBody"];
type CreateOrder = paths["/pay-orders"]["post"]["requestBody"]["content"]["application/json"];
type Created = paths["/pay-orders"]["post"]["responses"][201]["content"]["application/json"];
type OrderList = operations["list_orders"]["responses"][200]["content"]["application/json"];
type ListQuery = NonNullable<operations["list_orders"]["parameters"]["query"]>;
type Wallet = components["schemas"]["MerchantWalletView"];
type Endpoint = components["schemas"]["WebhookEndpointView"];
type Conflict = paths["/pay-orders/{id}/cancel"]["post"]["responses"][409]["content"]["application/json"];

const body: CreateOrder = {
  mode: "SALE",
  amount: "25.00",
  fiat_unit: "USD",
  expires_in: 3600,
  metadata: { cart: "c_123" },
};
const query: ListQuery = { limit: 10, status: "COMPLETED" };

export function describe(order: Created | PayOrder): string {
  const paid = order.status === "COMPLETED" ? "paid" : order.status;
  return `${order.object} ${order.id} ${order.mode} ${paid}`;
}

export function firstIds(list: OrderList): string[] {
  return list.has_more ? list.data.map((o) => o.id) : [];
}

export function explain(e: ErrorBody | Conflict): string {
  return `${e.error.code}: ${e.error.message} (${e.error.param ?? "-"}, ${e.request_id})`;
}

export function where(w: Wallet, ep: Endpoint): string {
  return `${w.chain_id} ${w.currencies.join(",")} -> ${ep.url} ${ep.enabled}`;
}

export const example = { body, query };

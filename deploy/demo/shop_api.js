// "shop": the demo's storefront API, a plain Node `http` server that knows nothing of bytewatch.
//
//   node shop_api.js PORT          (PORT 0 picks a free one; the first line printed says which)
//
//   GET  /products              200 {"products": [...]}         (?limit=N, default 20)
//   GET  /products/{id}         200 the product, or 404
//   POST /cart/{id}/items       201 {"cart": id, "items": n, ...} for {"product": id, "quantity": n}
//                               400 on a malformed body, 404 for an unknown product
//   GET  /health                200 {"status": "ok"}
//
// Carts live in memory (the oldest are forgotten past a bound). Product reads take a few
// milliseconds, as a database would, so that latency panels show something.
"use strict";

const http = require("http");

const MAX_CARTS = 10000;
const MAX_BODY = 16 * 1024;
const PRODUCT_PATH = /^\/products\/([A-Za-z0-9_-]{1,64})$/;
const CART_PATH = /^\/cart\/([A-Za-z0-9_-]{1,64})\/items$/;

const NAMES = ["mug", "t-shirt", "hoodie", "sticker", "notebook", "cap", "socks", "poster"];
const PRODUCTS = new Map();
for (let i = 0; i < 48; i += 1) {
  const id = `sku-${10001 + i}`;
  PRODUCTS.set(id, {
    id,
    name: `${NAMES[i % NAMES.length]} #${Math.floor(i / NAMES.length) + 1}`,
    price_cents: 500 + ((i * 737) % 4500),
    currency: "EUR",
    stock: (i * 13) % 40,
  });
}
const carts = new Map();

function send(res, status, value) {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": body.length });
  res.end(body);
}

// A few milliseconds of "database", without blocking the event loop.
function later(ms, fn) {
  setTimeout(fn, ms);
}

function listProducts(res, query) {
  const raw = query.get("limit");
  const limit = raw === null ? 20 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    send(res, 400, { error: "invalid_limit", message: "limit must be 1 to 100" });
    return;
  }
  const products = Array.from(PRODUCTS.values()).slice(0, limit);
  later(4 + Math.random() * 12, () => send(res, 200, { products, count: products.length }));
}

function getProduct(res, id) {
  const product = PRODUCTS.get(id);
  later(2 + Math.random() * 6, () => {
    if (product === undefined) send(res, 404, { error: "product_not_found", message: id });
    else send(res, 200, product);
  });
}

function addToCart(res, cartId, text) {
  let item;
  try {
    item = JSON.parse(text);
  } catch (_) {
    send(res, 400, { error: "invalid_json", message: "the body is not JSON" });
    return;
  }
  const quantity = item === null ? undefined : item.quantity;
  if (typeof item !== "object" || item === null || typeof item.product !== "string" ||
      !Number.isInteger(quantity) || quantity < 1 || quantity > 99) {
    send(res, 400, { error: "invalid_item", message: "expected {product, quantity 1..99}" });
    return;
  }
  const product = PRODUCTS.get(item.product);
  if (product === undefined) {
    send(res, 404, { error: "product_not_found", message: item.product });
    return;
  }
  let cart = carts.get(cartId);
  if (cart === undefined) {
    if (carts.size >= MAX_CARTS) carts.delete(carts.keys().next().value);
    cart = [];
    carts.set(cartId, cart);
  }
  cart.push({ product: product.id, quantity });
  const total = cart.reduce((sum, line) => sum + PRODUCTS.get(line.product).price_cents * line.quantity, 0);
  send(res, 201, { cart: cartId, items: cart.length, total_cents: total, currency: "EUR" });
}

function handle(req, res, body) {
  const url = new URL(req.url, "http://shop");
  const path = url.pathname;
  let match;
  if (path === "/health") {
    if (req.method !== "GET") send(res, 405, { error: "method_not_allowed" });
    else send(res, 200, { status: "ok" });
  } else if (path === "/products") {
    if (req.method !== "GET") send(res, 405, { error: "method_not_allowed" });
    else listProducts(res, url.searchParams);
  } else if ((match = PRODUCT_PATH.exec(path)) !== null) {
    if (req.method !== "GET") send(res, 405, { error: "method_not_allowed" });
    else getProduct(res, match[1]);
  } else if ((match = CART_PATH.exec(path)) !== null) {
    if (req.method !== "POST") send(res, 405, { error: "method_not_allowed" });
    else addToCart(res, match[1], body);
  } else {
    send(res, 404, { error: "not_found" });
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size <= MAX_BODY) chunks.push(chunk);
  });
  req.on("end", () => {
    if (size > MAX_BODY) send(res, 413, { error: "body_too_large" });
    else handle(req, res, Buffer.concat(chunks).toString("utf8"));
  });
});
server.keepAliveTimeout = 30000;

const port = Number(process.argv[2]);
if (process.argv.length !== 3 || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write("usage: node shop_api.js PORT\n");
  process.exit(2);
}
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`shop: listening on http://127.0.0.1:${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
process.on("SIGINT", () => process.exit(0));

// A plain SCIM 2.0 server built on SCIMMY and SCIMMY Express Routers — an
// implementation Connect did not write — holding users and groups in memory.
// The bridge's tests sync from it (listing + meta.lastModified increments).
// Usage: SCIM_TOKEN=secret node server.mjs   (prints "listening PORT")
import crypto from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.SCIM_TOKEN;
if (!token) throw new Error("SCIM_TOKEN is required");

function store(name) {
    const items = new Map();
    return {
        ingress(resource, data) {
            const id = resource.id ?? crypto.randomUUID();
            const prev = items.get(id);
            if (resource.id && !prev) throw new SCIMMY.Types.Error(404, null, `${name} ${id} not found`);
            const now = new Date().toISOString();
            const item = {...data, id, meta: {created: prev?.meta?.created ?? now, lastModified: now}};
            items.set(id, item);
            return item;
        },
        egress(resource) {
            if (resource.id) {
                const item = items.get(resource.id);
                if (!item) throw new SCIMMY.Types.Error(404, null, `${name} ${resource.id} not found`);
                return item;
            }
            const all = [...items.values()];
            return resource.filter ? resource.filter.match(all) : all;
        },
        degress(resource) {
            if (!items.delete(resource.id)) throw new SCIMMY.Types.Error(404, null, `${name} ${resource.id} not found`);
        },
    };
}

const users = store("User");
const groups = store("Group");
SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress((r, d) => users.ingress(r, d)).egress((r) => users.egress(r)).degress((r) => users.degress(r));
SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress((r, d) => groups.ingress(r, d)).egress((r) => groups.egress(r)).degress((r) => groups.degress(r));

const app = express();
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.org/scim-test",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization failed");
        return "test";
    },
}));
const server = app.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

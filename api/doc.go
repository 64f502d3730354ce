// Package api is sipwarden's HTTP management API and a typed Go client for
// it (Client).
//
// Every route but GET /healthz, GET /v1/jwks and GET /v1/openapi.json
// needs an API key, sent as "Authorization: Bearer <key>". Bodies are JSON; a single object answers
// as {"data":{...}}, a list as {"data":[...],"meta":{"next_cursor":"...",
// "page_size":N}} with cursor pagination (page[size], page[after]) on
// every list, and every error as
// {"errors":[{"code","title","detail","source":{"pointer"}}]}.
// Passwords are write-only: no response and no log line holds a password
// or an HA1, but for GET /v1/backup and GET /v1/export, which exist to move
// the HA1s and need an admin-scope key. A read-scope key may only GET
// (403 otherwise). README.md in this directory documents each route, and
// openapi.json (served at GET /v1/openapi.json) describes them in OpenAPI
// 3.1; routeTable in server.go is the one list of routes.
package api

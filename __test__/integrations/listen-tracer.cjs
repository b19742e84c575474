// Preloaded (node --require) into a dev server under test: reports every attempt to listen on a
// TCP port, so a test can prove that a refused server never bound one (not even to probe it).
'use strict'
const net = require('node:net')

const listen = net.Server.prototype.listen
net.Server.prototype.listen = function tracedListen(...args) {
  const first = args[0]
  const port = typeof first === 'object' && first !== null ? first.port : first
  if (typeof first !== 'object' || first === null || first.path === undefined) {
    process.stderr.write(`LEASELOCK-TEST-LISTEN ${JSON.stringify(port ?? null)}\n`)
  }
  return listen.apply(this, args)
}

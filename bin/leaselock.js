#!/usr/bin/env node
'use strict'
// `leaselock run <lockfile> -- <command...>` and `leaselock status <lockfile>`: see `leaselock --help`.
const { main } = require('../lib/cli.js')

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`leaselock: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = 70
  },
)

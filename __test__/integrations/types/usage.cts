// The same types seen from CommonJS.
import singleInstance = require('leaselock/vite')
import SingleInstancePlugin = require('leaselock/webpack')
import type { Plugin } from 'vite'

const a: Plugin = singleInstance()
const b: Plugin = singleInstance.singleInstance({ dev: true })
const c: Plugin = singleInstance.default()
void [a, b, c]
const w = [new SingleInstancePlugin(), new SingleInstancePlugin.SingleInstancePlugin({ wait: 10 }), new SingleInstancePlugin.default()]
void w
// @ts-expect-error options is an object
singleInstance('x')

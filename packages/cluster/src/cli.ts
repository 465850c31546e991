#!/usr/bin/env node
/**
 * The `tsray` executable (`bin` of @tsray/cluster). See {@link runCli} for the commands.
 * @module
 */
import { runCli } from './cli/main.js';

process.exitCode = await runCli(process.argv.slice(2));

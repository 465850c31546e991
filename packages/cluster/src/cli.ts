#!/usr/bin/env node
/**
 * The `tsray` executable (`bin` of @tsray/cluster). See {@link runCli} for the commands.
 * @module
 */
import { exitQuietlyOnClosedOutput } from './cli/io.js';
import { runCli } from './cli/main.js';

exitQuietlyOnClosedOutput();
process.exitCode = await runCli(process.argv.slice(2));

/** placeholder, filled by the package work */
export const PACKAGE = '@tsray/runtime-env';

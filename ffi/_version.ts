/**
 * The version of this package. It names the per-user cache folder of the
 * native library, so a new release never loads an old build. A test keeps it
 * equal to the versions in deno.json and package.json.
 *
 * @module
 */

/** The package version, as in deno.json and package.json. */
export const VERSION = "0.1.0";

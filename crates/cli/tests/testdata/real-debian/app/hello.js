const isNumber = require("is-number");
const version = require("is-number/package.json").version;
console.log(`node ${process.version.split(".")[0]} is-number ${version} ${isNumber("42")}`);

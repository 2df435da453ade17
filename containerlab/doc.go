// Package containerlab reads containerlab topology files (*.clab.yml)
// and checks them, for the d2d lab (docs/ARCHITECTURE.md §5): the same files deploy
// d2d nodes with containerlab and Docker, or run on one Linux host in
// network namespaces through `d2d lab` (package simulate).
//
// The directory also holds the topology files themselves, the image
// build file (Dockerfile) and the node configurations bound into the
// containers; see README.md beside this file.
//
// # What is read
//
// Load expands ${VAR} references first, as containerlab does, then
// decodes the parts a lab runner needs: the lab name, defaults, kinds,
// groups and nodes (kind, image, cmd, env, binds, exec, labels) and the
// links, in the brief form (endpoints: ["pe1:eth1", "p2:eth1"]) and the
// extended veth form (type: veth, endpoints: [{node, interface}]).
// Everything else is left to containerlab. Node settings are resolved
// in containerlab's order of precedence: node, then group, then kind,
// then defaults; env maps are merged key by key and binds are appended,
// a later bind replacing an earlier one with the same container path.
//
// # What is checked
//
// Check catches what containerlab's JSON schema (draft-07) cannot: an
// endpoint that is not "node:interface", a link to a node that is not
// defined, an interface used by two links, a link from an interface to
// itself, a link with other than two endpoints, and an interface name
// the kernel would refuse. Schema validates a file against the schema
// itself, taken from $D2D_CLAB_SCHEMA (SchemaFromEnv): containerlab's
// schemas/clab.schema.json is in no package registry.
package containerlab

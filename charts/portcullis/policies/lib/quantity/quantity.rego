# Kubernetes resource quantities ("500m", "1", "0.5", "512Mi", "1G", "1e9").
#
# Written here rather than with units.parse / units.parse_bytes because OPA
# and regorus do not agree on every suffix (for example "m" is milli for
# Kubernetes), and because to_number aborts the whole query in regorus on a
# string that is not a number: every string reaches to_number only after a
# regular expression has proved it to be a plain decimal number.
package lib.quantity

# Decimal suffixes as powers of ten. They are strings because regorus prints
# a negative number with sprintf("%d") as "--3".
_decimal := {"n": "-9", "u": "-6", "m": "-3", "": "0", "k": "3", "M": "6", "G": "9", "T": "12", "P": "15", "E": "18"}

# Binary suffixes as multipliers.
_binary := {
	"Ki": 1024,
	"Mi": 1048576,
	"Gi": 1073741824,
	"Ti": 1099511627776,
	"Pi": 1125899906842624,
	"Ei": 1152921504606846976,
}

# Long inputs could overflow a float; no real quantity is this long.
_max_length := 32

_plain_number := `^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`

_exponent_form := `^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]{1,2}$`

# parse(q) is the value of quantity q in base units (cores for cpu, bytes for
# memory); undefined when q is not a valid non-negative quantity.
parse(q) := q if {
	is_number(q)
	q >= 0
}

# With a decimal suffix (or none): "500m", "1", "0.5", "1G".
parse(q) := n if {
	is_string(q)
	count(q) <= _max_length
	some suffix, power in _decimal
	endswith(q, suffix)
	body := trim_prefix(trim_suffix(q, suffix), "+")
	regex.match(_plain_number, body)
	n := to_number(sprintf("%se%s", [_json_number(body), power]))
}

# With a binary suffix: "512Mi", "1.5Gi".
parse(q) := n if {
	is_string(q)
	count(q) <= _max_length
	some suffix, multiplier in _binary
	endswith(q, suffix)
	body := trim_prefix(trim_suffix(q, suffix), "+")
	regex.match(_plain_number, body)
	n := to_number(_json_number(body)) * multiplier
}

# In exponent form: "1e9", "2.5E3".
parse(q) := n if {
	is_string(q)
	count(q) <= _max_length
	regex.match(_exponent_form, q)
	parts := split(lower(trim_prefix(q, "+")), "e")
	n := to_number(sprintf("%se%s", [_json_number(parts[0]), parts[1]]))
}

# True when q is a valid quantity.
valid(q) if {
	_ := parse(q)
}

# A string of digits with an optional fraction ("007.50", ".5", "5.") as a
# JSON number ("7.50", "0.5", "5"), which to_number reads alike everywhere.
_json_number(body) := s if {
	parts := split(body, ".")
	whole := _or_zero(trim_left(parts[0], "0"))
	fraction := concat("", array.slice(parts, 1, 2))
	s := _with_fraction(whole, fraction)
}

_or_zero(digits) := digits if digits != ""

_or_zero(digits) := "0" if digits == ""

_with_fraction(whole, fraction) := whole if fraction == ""

_with_fraction(whole, fraction) := concat(".", [whole, fraction]) if fraction != ""

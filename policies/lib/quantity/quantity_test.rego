package lib.quantity_test

import data.lib.quantity

_cases := {
	"0": 0,
	"1": 1,
	"2": 2,
	"0.5": 0.5,
	"500m": 0.5,
	"1000m": 1,
	"1500m": 1.5,
	"100m": 0.1,
	".5": 0.5,
	"5.": 5,
	"007": 7,
	"+1": 1,
	"250u": 0.00025,
	"1k": 1000,
	"1M": 1000000,
	"1G": 1000000000,
	"2T": 2000000000000,
	"1P": 1000000000000000,
	"1E": 1000000000000000000,
	"1Ki": 1024,
	"512Mi": 536870912,
	"1Gi": 1073741824,
	"1.5Gi": 1610612736,
	"1Ti": 1099511627776,
	"1000000": 1000000,
	"1e9": 1000000000,
	"1E3": 1000,
	"2.5e3": 2500,
	"1e-3": 0.001,
	"1e+03": 1000,
}

test_valid_quantities if {
	results := {q: quantity.parse(q) | some q, _ in _cases}
	results == _cases
}

test_numbers_pass_through if {
	quantity.parse(2) == 2
	quantity.parse(0.5) == 0.5
}

test_comparisons if {
	quantity.parse("1000m") == quantity.parse("1")
	quantity.parse("1001m") > quantity.parse("1")
	quantity.parse("1Gi") > quantity.parse("1G")
	quantity.parse("1024Mi") == quantity.parse("1Gi")
	quantity.parse("100m") == quantity.parse("0.1")
}

_invalid := [
	"", "abc", "1.2.3", "1 Gi", "1gi", "1mi", "-1", "1Gi ", "Gi", "m", ".", "e3", "1e", "1e999", "1Gim", "1KiB", "0x10",
	"1.5.Gi", "123456789012345678901234567890123",
]

test_invalid_quantities if {
	parsed := [q | some q in _invalid; quantity.valid(q)]
	parsed == []
}

test_invalid_types if {
	not quantity.valid(null)
	not quantity.valid(true)
	not quantity.valid(["1"])
	not quantity.valid({"cpu": "1"})
	not quantity.valid(-1)
}

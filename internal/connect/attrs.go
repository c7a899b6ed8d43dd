package connect

import (
	"context"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
)

// MissingSearchAttributes returns the attributes of want that namespace
// lacks, and an error when it has one of them with another type.
func MissingSearchAttributes(ctx context.Context, tc client.Client, namespace string, want map[string]enumspb.IndexedValueType) (map[string]enumspb.IndexedValueType, error) {
	have, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list the search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return nil, fmt.Errorf("namespace %s has search attribute %s of type %s; rtbpipe needs %s", namespace, name, got, typ)
		}
	}
	return missing, nil
}

// EnsureSearchAttributes registers the attributes of want that namespace
// lacks, and returns their names.
func EnsureSearchAttributes(ctx context.Context, tc client.Client, namespace string, want map[string]enumspb.IndexedValueType) ([]string, error) {
	missing, err := MissingSearchAttributes(ctx, tc, namespace, want)
	if err != nil || len(missing) == 0 {
		return nil, err
	}
	var names []string
	for n := range missing {
		names = append(names, n)
	}
	slices.Sort(names)
	if _, err := tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing}); err != nil {
		return nil, fmt.Errorf("register search attributes %s in namespace %s (or register them by hand: temporal operator search-attribute create): %w",
			strings.Join(names, ", "), namespace, err)
	}
	return names, nil
}

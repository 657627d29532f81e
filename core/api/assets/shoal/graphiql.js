// Starts the bundled GraphiQL (served from this host, nothing from the internet).
// Signed in to the console, requests go with the session cookie and its CSRF token;
// otherwise put an API key in the Headers tab (GraphiQL keeps it in local storage).
const PLACEHOLDER = 'Bearer <your API key>';
const csrf = () => {
  const found = document.cookie.split('; ').find((c) => c.startsWith('shoal_csrf='));
  return found ? decodeURIComponent(found.slice('shoal_csrf='.length)) : '';
};
const fetcher = GraphiQL.createFetcher({
  url: '/graphql',
  fetch: (url, init = {}) => {
    const headers = new Headers(init.headers);
    if (headers.get('authorization') === PLACEHOLDER) headers.delete('authorization');
    if (csrf()) headers.set('x-csrf-token', csrf());
    return fetch(url, { ...init, headers, credentials: 'same-origin' });
  },
});
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: true,
    defaultHeaders: `{ "Authorization": "${PLACEHOLDER}" }`,
    defaultQuery: `# Signed in to the console? Run this query as you are.
# Otherwise put your API key in the Headers tab below first.
query FirstCustomers {
  viewer { tenant { name } user { name } }
  customers(first: 5, filter: { stages: [CUSTOMER, LOYAL] }) {
    totalCount
    edges { node { id displayName phones lifecycleStage attributes
      timeline(first: 3) { edges { node { type occurredAt amount { amount currency } } } } } }
    pageInfo { hasNextPage endCursor }
  }
}
`,
  }),
);

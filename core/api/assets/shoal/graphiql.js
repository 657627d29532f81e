// Starts the bundled GraphiQL (served from this host, nothing from the internet).
// The API key goes in the Headers tab; GraphiQL keeps it in this browser's local storage.
const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
ReactDOM.createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: 'headers',
    shouldPersistHeaders: true,
    defaultHeaders: '{ "Authorization": "Bearer <your API key>" }',
    defaultQuery: `# Put your API key in the Headers tab below, then run this query.
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

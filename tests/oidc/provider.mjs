// The oidc plugin's test provider: oidc-provider on 127.0.0.1:<port> with one client,
// its development login form (any password) and two people.
// Usage: node provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from 'oidc-provider';

const [port, redirect, secret] = process.argv.slice(2);
const people = {
  ann: { email: 'ann@dmv.example.org', email_verified: true, name: 'Ann Lee',
         groups: ['dmv-desk', 'dmv-staff'] },
  mallory: { email: 'mallory@tax.example.org', email_verified: true, name: 'Mallory',
             groups: ['tax-staff'] },
};
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{ client_id: 'itsm', client_secret: secret, redirect_uris: [redirect],
              grant_types: ['authorization_code'], response_types: ['code'] }],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: { email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false,  // the groups claim in the ID token itself
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, ...(people[id] || {}) }),
  }),
  features: { devInteractions: { enabled: true } },
});
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));

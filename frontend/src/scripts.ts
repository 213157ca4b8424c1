// Third-party scripts the portal loads from where the server says (Stripe.js, Google's sign-in
// button): once per page, each allowed by the page's content security policy.

const loaded = new Map<string, Promise<void>>();

export function loadScript(url: string): Promise<void> {
  let loading = loaded.get(url);
  if (!loading) {
    loading = new Promise<void>((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = url;
      tag.onload = () => resolve();
      tag.onerror = () => {
        loaded.delete(url); // try again next time
        reject(new Error(`${new URL(url).host} could not be reached`));
      };
      document.head.appendChild(tag);
    });
    loaded.set(url, loading);
  }
  return loading;
}
